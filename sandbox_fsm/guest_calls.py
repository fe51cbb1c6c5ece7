"""Calls on a running sandbox or container: pause, resume, update, stats, ps, tty, guest
machine calls, copy file, network reads, OOM events.

Composed into the `Runtime` facade, which forwards these calls. A call that changes the
guest is a logged operation (operations/guest.py) run through the engine (`sandbox_op`,
`container_op`, `guest_op`); a read that changes nothing calls the guest and returns,
journalling nothing (one that discovers a fact, an OOM kill, records that fact).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from agent_io import AgentClient, AgentDead, AgentUnavailable, convert
from eventstore import NewEvent

from .config import RuntimeConfig
from .engine import Engine
from .errors import GuestError, InvalidRequest, guest_errors
from .names import ACTIVE, Ev, Op, State
from .operations import guest as guest_ops
from .state import SandboxState


class GuestCalls:
    """Calls on running sandboxes and containers, through an `Engine`."""

    def __init__(self, engine: Engine, config: RuntimeConfig) -> None:
        self.engine = engine
        self.config = config

    def _running(self, sandbox_id: str, what: str) -> SandboxState:
        """The sandbox, refused unless it is running (a read needs its guest)."""
        state = self.engine.repo.state(sandbox_id)
        if state.state != State.RUNNING:
            raise InvalidRequest(f"cannot {what.replace('_', ' ')} in sandbox {sandbox_id!r}: "
                                 f"it is {state.state}, not running")
        return state

    def _container_agent(self, sandbox_id: str, container_id: str, what: str) -> AgentClient:
        """The guest of a running sandbox, for a read on one of its active containers."""
        state = self.engine.repo.state(sandbox_id)
        if state.state != State.RUNNING:
            raise InvalidRequest(
                f"cannot {what.replace('_', ' ')} {container_id!r}: sandbox {sandbox_id!r} is "
                f"{state.state}, not running")
        current = state.containers.get(container_id)
        cstate = current.state if current else State.NEW
        if cstate not in ACTIVE:
            raise InvalidRequest(f"cannot {what} in container {container_id!r} of sandbox "
                                 f"{sandbox_id!r}: it is {cstate}")
        return self.engine.host.agent_for(state)

    def pause_sandbox(self, sandbox_id: str) -> SandboxState:
        """Freeze every running container (the seed pauses the VM); containers keep their
        own state, the sandbox is `paused` until `resume_sandbox`."""
        return self.engine.sandbox_op(sandbox_id, guest_ops.PAUSE_SANDBOX)

    def resume_sandbox(self, sandbox_id: str) -> SandboxState:
        return self.engine.sandbox_op(sandbox_id, guest_ops.RESUME_SANDBOX)

    def pause_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        """SIGSTOP every process of the container (running -> paused)."""
        return self.engine.container_op(sandbox_id, container_id, guest_ops.PAUSE_CONTAINER)

    def resume_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self.engine.container_op(sandbox_id, container_id, guest_ops.RESUME_CONTAINER)

    def update_container(self, sandbox_id: str, container_id: str,
                         resources: dict[str, Any]) -> SandboxState:
        """UpdateContainer with OCI `linux.resources` (runtime-spec JSON names)."""
        try:
            convert.oci_spec_to_proto({"linux": {"resources": resources}})
        except ValueError as exc:
            raise InvalidRequest(f"update of container {container_id!r}: {exc}") from exc
        return self.engine.container_op(sandbox_id, container_id, guest_ops.UPDATE_CONTAINER,
                                        params={"resources": resources})

    def stats(self, sandbox_id: str, container_id: str) -> dict[str, int]:
        """CPU (ns), memory (bytes) and pid figures of the container, as the guest reports."""
        agent = self._container_agent(sandbox_id, container_id, Op.STATS_CONTAINER)
        with guest_errors():
            stats = agent.stats_container(container_id).cgroup_stats
        cpu, mem, pids = stats.cpu_stats.cpu_usage, stats.memory_stats.usage, stats.pids_stats
        return {"cpu_total_ns": cpu.total_usage, "cpu_user_ns": cpu.usage_in_usermode,
                "cpu_kernel_ns": cpu.usage_in_kernelmode, "memory_usage": mem.usage,
                "memory_limit": mem.limit, "pids_current": pids.current,
                "pids_limit": pids.limit}

    def list_processes(self, sandbox_id: str, container_id: str, format: str = "table",
                       args: tuple[str, ...] = ()) -> bytes:
        """The container's processes as the guest's ps prints them ("table" or "json")."""
        agent = self._container_agent(sandbox_id, container_id, Op.LIST_PROCESSES)
        with guest_errors():
            return agent.list_processes(container_id, format, list(args))

    def tty_resize(self, sandbox_id: str, container_id: str, rows: int, columns: int,
                   exec_id: str | None = None) -> None:
        self.engine.container_op(sandbox_id, container_id, guest_ops.RESIZE_TTY, params={
            "rows": int(rows), "columns": int(columns), "exec_id": exec_id})

    def guest_details(self, sandbox_id: str) -> Any:
        """GetGuestDetails -> agent_io.messages.agent.GuestDetailsResponse."""
        state = self._running(sandbox_id, Op.GUEST_DETAILS)
        with guest_errors():
            return self.engine.host.agent_for(state).get_guest_details()

    def online_cpu_mem(self, sandbox_id: str, cpus: int, *, cpu_only: bool = False,
                       wait: bool = False) -> None:
        self.engine.guest_op(sandbox_id, guest_ops.ONLINE_CPU_MEM,
                             {"cpus": int(cpus), "cpu_only": cpu_only, "wait": wait})

    def hotplug_memory(self, sandbox_id: str, addr: int, size_mb: int) -> None:
        """Probe one address per memory section (`[hypervisor] memory_section_size_mb`)."""
        section = self.config.hypervisor.memory_section_size_mb
        if section <= 0:
            raise InvalidRequest(f"memory hotplug in sandbox {sandbox_id!r}: [hypervisor] "
                                 f"memory_section_size_mb is {section}; set it > 0")
        if size_mb < section or size_mb % section:
            raise InvalidRequest(f"memory hotplug in sandbox {sandbox_id!r}: {size_mb} MiB is "
                                 f"not a multiple of the {section} MiB section size")
        self.engine.guest_op(sandbox_id, guest_ops.HOTPLUG_MEMORY,
                             {"addr": int(addr), "size_mb": int(size_mb)})

    def reseed_rng(self, sandbox_id: str, size: int = 512) -> None:
        """ReseedRandomDev with `size` fresh bytes from the host's RNG."""
        if size <= 0:
            raise InvalidRequest(f"reseed of sandbox {sandbox_id!r}: size {size} must be > 0")
        self.engine.guest_op(sandbox_id, guest_ops.RESEED_RNG, {"bytes": int(size)})

    def set_guest_time(self, sandbox_id: str, when: datetime | None = None) -> None:
        """SetGuestDateTime (now by default); `when` must be timezone-aware."""
        when = when or datetime.now(UTC)
        if when.tzinfo is None:
            raise InvalidRequest(f"guest time for sandbox {sandbox_id!r}: {when} has no zone")
        self.engine.guest_op(sandbox_id, guest_ops.SET_GUEST_TIME, {"time": when.isoformat()})

    def copy_file(self, sandbox_id: str, src: str | os.PathLike[str], dst: str) -> None:
        """Copy host file `src` to guest path `dst` (1 MiB chunks; mode and owner kept)."""
        src = os.path.abspath(os.fspath(src))
        if not os.path.isfile(src):
            raise InvalidRequest(f"copy into sandbox {sandbox_id!r}: {src!r} is not a file")
        if not dst.startswith("/"):
            raise InvalidRequest(f"copy into sandbox {sandbox_id!r}: guest path {dst!r} "
                                 "is not absolute")
        self.engine.guest_op(sandbox_id, guest_ops.COPY_FILE, {"src": src, "dst": dst})

    def list_interfaces(self, sandbox_id: str) -> list[convert.NetInterface]:
        state = self._running(sandbox_id, Op.LIST_INTERFACES)
        with guest_errors():
            found = self.engine.host.agent_for(state).list_interfaces()
        return [convert.interface_from_proto(i) for i in found]

    def list_routes(self, sandbox_id: str) -> list[convert.NetRoute]:
        state = self._running(sandbox_id, Op.LIST_ROUTES)
        with guest_errors():
            found = self.engine.host.agent_for(state).list_routes()
        return [convert.route_from_proto(r) for r in found]

    def wait_oom_event(self, sandbox_id: str) -> str:
        """Block until the guest reports an OOM kill; recorded as ContainerOOMKilled."""
        client = self.engine.host.agent_for(self.engine.repo.state(sandbox_id))
        with guest_errors():
            container_id = client.get_oom_event()
        self.engine.record_fact(sandbox_id, NewEvent(Ev.CONTAINER_OOM_KILLED,
                                                     {"container": container_id}))
        return container_id

    def oom_events(self, sandbox_id: str) -> Iterator[str]:
        """Container ids as the guest reports OOM kills, until the guest goes away."""
        while True:
            try:
                yield self.wait_oom_event(sandbox_id)
            except GuestError as exc:
                if isinstance(exc.cause, AgentDead | AgentUnavailable):
                    return
                raise
            except InvalidRequest:
                return
