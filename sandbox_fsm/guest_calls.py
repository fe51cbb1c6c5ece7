"""Calls on a running sandbox or container (operations/guest.py): pause, resume, update,
stats, ps, tty, guest machine calls, copy file, network reads, OOM events.

Composed into the `Runtime` facade, which forwards these calls: each one is a logged
operation run through the engine (`sandbox_op`, `container_op`, `guest_op`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from agent_io import AgentDead, AgentUnavailable, convert
from eventstore import NewEvent

from .config import RuntimeConfig
from .engine import Engine
from .errors import InvalidRequest
from .names import Ev
from .operations import guest as guest_ops
from .saga import Operation
from .state import SandboxState


class GuestCalls:
    """Calls on running sandboxes and containers, through an `Engine`."""

    def __init__(self, engine: Engine, config: RuntimeConfig) -> None:
        self.engine = engine
        self.config = config
        self._replies: dict[str, Any] = {}

    def reply(self, request: str, value: Any) -> None:
        """Where a logged read leaves its full answer for the caller that asked."""
        self._replies[request] = value

    def _ask(self, sandbox_id: str, container_id: str | None, operation: Operation,
             params: dict | None = None) -> Any:
        request = uuid.uuid4().hex
        params = {**(params or {}), "request": request}
        try:
            if container_id is None:
                self.engine.guest_op(sandbox_id, operation, params)
            else:
                self.engine.container_op(sandbox_id, container_id, operation, params=params)
            return self._replies.get(request)
        finally:
            self._replies.pop(request, None)

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
        return self._ask(sandbox_id, container_id, guest_ops.STATS_CONTAINER)

    def list_processes(self, sandbox_id: str, container_id: str, format: str = "table",
                       args: tuple[str, ...] = ()) -> bytes:
        """The container's processes as the guest's ps prints them ("table" or "json")."""
        return self._ask(sandbox_id, container_id, guest_ops.LIST_PROCESSES,
                         {"format": format, "args": list(args)})

    def tty_resize(self, sandbox_id: str, container_id: str, rows: int, columns: int,
                   exec_id: str | None = None) -> None:
        self.engine.container_op(sandbox_id, container_id, guest_ops.RESIZE_TTY, params={
            "rows": int(rows), "columns": int(columns), "exec_id": exec_id})

    def guest_details(self, sandbox_id: str) -> Any:
        """GetGuestDetails -> agent_io.messages.agent.GuestDetailsResponse."""
        return self._ask(sandbox_id, None, guest_ops.GUEST_DETAILS)

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
        return self._ask(sandbox_id, None, guest_ops.LIST_INTERFACES)

    def list_routes(self, sandbox_id: str) -> list[convert.NetRoute]:
        return self._ask(sandbox_id, None, guest_ops.LIST_ROUTES)

    def wait_oom_event(self, sandbox_id: str) -> str:
        """Block until the guest reports an OOM kill; recorded as ContainerOOMKilled."""
        client = self.engine.host.agent_for(self.engine.repo.state(sandbox_id))
        container_id = client.get_oom_event()
        self.engine.record_fact(sandbox_id, NewEvent(Ev.CONTAINER_OOM_KILLED,
                                                     {"container": container_id}))
        return container_id

    def oom_events(self, sandbox_id: str) -> Iterator[str]:
        """Container ids as the guest reports OOM kills, until the guest goes away."""
        while True:
            try:
                yield self.wait_oom_event(sandbox_id)
            except (AgentDead, AgentUnavailable, InvalidRequest):
                return
