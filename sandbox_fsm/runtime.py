"""`Runtime`: the embedding API, a facade over the layers that do the work.

- `Repository` (repository.py): sandboxes folded from the log, cached and snapshotted;
- `Engine` (engine.py): one operation at a time per sandbox, run as a saga; facts;
- `Agents` (agents.py): every client of a guest agent, from one timeout table;
- `GuestCalls` (guest_calls.py): calls on running sandboxes and containers;
- `recover` (recovery.py): what a dead process left half-done.

The Runtime is also the `StepHost` its steps see (operations/context.py). One Runtime per
process; the exact `expected_version` of every append serialises processes.
"""

from __future__ import annotations

import builtins
import os
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_io import AgentClient, convert
from eventstore import EventStore, NewEvent, RecordedEvent

from . import host
from .agents import Agents
from .config import RuntimeConfig, load_config, refuse_unsupported
from .drivers import guestimage
from .engine import Engine
from .errors import InvalidRequest, NotFound, guest_errors
from .guest_calls import GuestCalls
from .names import STARTED, Ev, State
from .operations import container as container_ops
from .operations import devices as device_ops
from .operations import guest as guest_ops
from .operations import processes as process_ops
from .operations import sandbox as sandbox_ops
from .recovery import RecoveryReport, recover
from .repository import STREAM_PREFIX, Repository, stream_of
from .saga import CrashKnob
from .spec import ContainerConfig, SandboxConfig
from .state import SandboxState

__all__ = ["STREAM_PREFIX", "Runtime", "stream_of"]


class Runtime:
    """Drive sandboxes and containers; `state()` answers from the log alone."""

    def __init__(self, store: EventStore, runtime_dir: str | os.PathLike[str],
                 config: RuntimeConfig, *, snapshot_every: int = 200) -> None:
        self.store = store
        self.runtime_dir = Path(os.path.abspath(runtime_dir))
        self.config = config
        self.driver = config.hypervisor.driver
        owner = host.identity_of(os.getpid())
        assert owner is not None, "our own process has a /proc entry"
        self.owner = owner
        self.repo = Repository(store, snapshot_every=snapshot_every)
        self.agents = Agents(config.agent)
        self.engine = Engine(self.repo, self, knob=CrashKnob.from_env(), owner=owner)
        self.guest = GuestCalls(self.engine, config)
        self.last_recovery: RecoveryReport | None = None

    @classmethod
    def open(cls, state_dir: str | os.PathLike[str], runtime_dir: str | os.PathLike[str],
             config: RuntimeConfig | str | os.PathLike[str] | None = None, *,
             recover: bool = True, durable: bool = True, snapshot_every: int = 200) -> Runtime:
        """Open (creating if needed) the log in state_dir; recover unless told not to."""
        if config is None:
            config = RuntimeConfig.default()
        elif not isinstance(config, RuntimeConfig):
            config = load_config(config)
        refuse_unsupported(config)
        try:  # our own 0700 subdirs: the dirs given may be shared ones (/run, /tmp)
            events = host.ensure_private_dir(os.path.join(state_dir, "events"))
            host.ensure_private_dir(os.path.join(runtime_dir, "sandboxes"))
        except host.UnsafePath as exc:
            raise InvalidRequest(f"refusing to keep state there: {exc}") from None
        store = EventStore.open(events, durable=durable)
        store.reader_check()  # free reader slots a killed predecessor left pinned
        rt = cls(store, runtime_dir, config, snapshot_every=snapshot_every)
        if recover:
            rt.recover()
        return rt

    def close(self) -> None:
        self.agents.close()
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading (Repository) ---------------------------------------------------------------

    def state(self, sandbox_id: str) -> SandboxState:
        """The sandbox as its events say (deleted ones included); NotFound if never created."""
        return self.repo.state(sandbox_id)

    def list_sandboxes(self) -> builtins.list[SandboxState]:
        """Every sandbox in the log (deleted ones included), folded."""
        return self.repo.list_sandboxes()

    def list(self) -> builtins.list[SandboxState]:
        """Deprecated alias of `list_sandboxes` (kept for one release)."""
        warnings.warn("Runtime.list() is deprecated; use Runtime.list_sandboxes()",
                      DeprecationWarning, stacklevel=2)
        return self.list_sandboxes()

    def live_sandboxes(self) -> tuple[int, builtins.list[str]]:
        """(sandboxes in the log, ids of those not finished deleting)."""
        return self.repo.live_sandboxes()

    def events(self, sandbox_id: str) -> builtins.list[RecordedEvent]:
        return self.repo.events(sandbox_id)

    # -- what steps see (StepHost) ----------------------------------------------------------

    @property
    def private_paths(self) -> builtins.list[str]:
        """The runtime dir and the event store: kept out of every container's host view."""
        return [str(self.runtime_dir), self.store.path]

    @property
    def image_cache(self) -> Path:
        """Where guest images are built and kept: <state dir>/guest-images."""
        return guestimage.cache_dir(Path(self.store.path).parent)

    def layout(self, sandbox_id: str) -> host.SandboxLayout:
        return host.SandboxLayout(self.runtime_dir, sandbox_id)

    def agent_for(self, state: SandboxState) -> AgentClient:
        """A client for the sandbox's guest, dialled lazily, kept while the URL holds."""
        return self.agents.for_sandbox(state)

    def forget_agent(self, sandbox_id: str) -> None:
        self.agents.forget(sandbox_id)

    # -- sandbox lifecycle ------------------------------------------------------------------

    def create_sandbox(self, config: SandboxConfig) -> SandboxState:
        config = config.validated()
        return self.engine.sandbox_op(config.id, sandbox_ops.CREATE, may_be_new=True,
                                      extra={"config": config.to_dict()})

    def start_sandbox(self, sandbox_id: str) -> SandboxState:
        """Start the guest; with a network config or dynamic tracing, set them up too."""
        opts = sandbox_ops.options(self.config, self.state(sandbox_id).config)
        return self.engine.sandbox_op(sandbox_id, sandbox_ops.start(opts), params=opts)

    def stop_sandbox(self, sandbox_id: str) -> SandboxState:
        opts = sandbox_ops.options(self.config, self.state(sandbox_id).config)
        return self.engine.sandbox_op(sandbox_id, sandbox_ops.stop(opts), params=opts)

    def delete_sandbox(self, sandbox_id: str, force: bool = False) -> SandboxState:
        """Delete a created or stopped sandbox. A failed one is torn down first (its ledger
        may still hold its guest), and with force so is a running or paused one: a sandbox
        is never deleted while it holds anything (DELETE's last step checks)."""
        state = self.state(sandbox_id).state
        if state == State.FAILED or (force and state in STARTED):
            self.stop_sandbox(sandbox_id)
        return self.engine.sandbox_op(sandbox_id, sandbox_ops.DELETE)

    # -- containers -------------------------------------------------------------------------

    def create_container(self, sandbox_id: str, config: ContainerConfig) -> SandboxState:
        config = config.validated()
        try:  # the seed's rules, checked before anything touches the host
            container_ops.guest_request(config, self.config, sandbox_id, {})
            device_ops.check_driver(config, self.config.hypervisor.driver)
        except ValueError as exc:
            raise InvalidRequest(
                f"container {config.id!r} of sandbox {sandbox_id!r}: {exc}") from exc
        full = config.to_dict()
        # The OCI spec is recorded once, in CreateContainer's intent, as the guest gets it
        # (it can be megabytes): the operation's params keep the rest of the config.
        return self.engine.container_op(sandbox_id, config.id, container_ops.create(config),
                                        params={"config": full},
                                        recorded={"config": {**full, "oci": None}})

    def start_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self.engine.container_op(sandbox_id, container_id, container_ops.START)

    def stop_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self.engine.container_op(sandbox_id, container_id, container_ops.STOP,
                                        need_guest=False)

    def delete_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self.engine.container_op(sandbox_id, container_id, container_ops.DELETE,
                                        need_guest=False)

    def exec(self, sandbox_id: str, container_id: str, args: builtins.list[str], *,
             env: dict[str, str] | None = None, cwd: str | None = None,
             user: str | None = None, terminal: bool = False) -> str:
        """Start another process in a running container; returns its exec id."""
        if not args:
            raise InvalidRequest(f"exec in {container_id!r}: empty command")
        state = self.engine.container_op(sandbox_id, container_id, process_ops.EXEC, params={
            "args": list(args), "env": env or {}, "cwd": cwd, "user": user,
            "terminal": terminal})
        return next(reversed(state.containers[container_id].processes))

    def kill(self, sandbox_id: str, container_id: str, signal: int, all: bool = False,
             exec_id: str | None = None) -> None:
        self.engine.container_op(sandbox_id, container_id, process_ops.KILL,
                                 params={"signal": int(signal), "all": all, "exec_id": exec_id})

    # -- processes (not state changes: only their exits are recorded) ------------------------

    def _process_client(self, sandbox_id: str, container_id: str) -> AgentClient:
        state = self.state(sandbox_id)
        if container_id not in state.containers:
            raise NotFound(f"no container {container_id!r} in sandbox {sandbox_id!r}")
        return self.agent_for(state)

    def wait(self, sandbox_id: str, container_id: str, exec_id: str | None = None) -> int:
        """Block until the process exits; its exit is recorded as ProcessExited."""
        client = self._process_client(sandbox_id, container_id)
        with guest_errors():
            status = client.wait_process(container_id, exec_id or container_id)
        self.record_fact(sandbox_id, NewEvent(Ev.PROCESS_EXITED, {
            "container": container_id, "exec_id": exec_id or "", "status": status}))
        return status

    def read_stdout(self, sandbox_id: str, container_id: str, exec_id: str | None = None,
                    size: int = 65536) -> bytes:
        """Up to `size` bytes of the process's stdout; b"" at its end."""
        client = self._process_client(sandbox_id, container_id)
        with guest_errors():
            return client.read_stdout(container_id, exec_id or container_id, size)

    def read_stderr(self, sandbox_id: str, container_id: str, exec_id: str | None = None,
                    size: int = 65536) -> bytes:
        client = self._process_client(sandbox_id, container_id)
        with guest_errors():
            return client.read_stderr(container_id, exec_id or container_id, size)

    def write_stdin(self, sandbox_id: str, container_id: str, data: bytes,
                    exec_id: str | None = None) -> int:
        client = self._process_client(sandbox_id, container_id)
        with guest_errors():
            return client.write_stdin(container_id, exec_id or container_id, data)

    def close_stdin(self, sandbox_id: str, container_id: str, exec_id: str | None = None) -> None:
        """CloseStdin, logged (StdinClosed)."""
        self.engine.container_op(sandbox_id, container_id, guest_ops.CLOSE_STDIN,
                                 params={"exec_id": exec_id})

    def record_fact(self, sandbox_id: str, event: NewEvent, *, attempts: int = 50) -> bool:
        """Append an observed fact between operations (False: the sandbox stayed busy)."""
        return self.engine.record_fact(sandbox_id, event, attempts=attempts)

    def recover(self, *, dry_run: bool = False, step_timeout: float = 30.0,
                sandbox_timeout: float | None = None, parallel: int = 8) -> RecoveryReport:
        """Finish what a dead process left half-done and match ledgers to the host (see
        recovery.py); `open` runs it and keeps the report in `last_recovery`."""
        self.last_recovery = recover(self.engine, self.agents, dry_run=dry_run,
                                     step_timeout=step_timeout,
                                     sandbox_timeout=sandbox_timeout, parallel=parallel)
        return self.last_recovery

    # -- running sandboxes and containers (GuestCalls has the details) ----------------------

    def pause_sandbox(self, sandbox_id: str) -> SandboxState:
        return self.guest.pause_sandbox(sandbox_id)

    def resume_sandbox(self, sandbox_id: str) -> SandboxState:
        return self.guest.resume_sandbox(sandbox_id)

    def pause_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self.guest.pause_container(sandbox_id, container_id)

    def resume_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self.guest.resume_container(sandbox_id, container_id)

    def update_container(self, sandbox_id: str, container_id: str,
                         resources: dict[str, Any]) -> SandboxState:
        return self.guest.update_container(sandbox_id, container_id, resources)

    def stats(self, sandbox_id: str, container_id: str) -> dict[str, int]:
        return self.guest.stats(sandbox_id, container_id)

    def list_processes(self, sandbox_id: str, container_id: str, format: str = "table",
                       args: tuple[str, ...] = ()) -> bytes:
        return self.guest.list_processes(sandbox_id, container_id, format, args)

    def tty_resize(self, sandbox_id: str, container_id: str, rows: int, columns: int,
                   exec_id: str | None = None) -> None:
        self.guest.tty_resize(sandbox_id, container_id, rows, columns, exec_id)

    def guest_details(self, sandbox_id: str) -> Any:
        return self.guest.guest_details(sandbox_id)

    def online_cpu_mem(self, sandbox_id: str, cpus: int, *, cpu_only: bool = False,
                       wait: bool = False) -> None:
        self.guest.online_cpu_mem(sandbox_id, cpus, cpu_only=cpu_only, wait=wait)

    def hotplug_memory(self, sandbox_id: str, addr: int, size_mb: int) -> None:
        self.guest.hotplug_memory(sandbox_id, addr, size_mb)

    def reseed_rng(self, sandbox_id: str, size: int = 512) -> None:
        self.guest.reseed_rng(sandbox_id, size)

    def set_guest_time(self, sandbox_id: str, when: datetime | None = None) -> None:
        self.guest.set_guest_time(sandbox_id, when)

    def copy_file(self, sandbox_id: str, src: str | os.PathLike[str], dst: str) -> None:
        self.guest.copy_file(sandbox_id, src, dst)

    def list_interfaces(self, sandbox_id: str) -> builtins.list[convert.NetInterface]:
        return self.guest.list_interfaces(sandbox_id)

    def list_routes(self, sandbox_id: str) -> builtins.list[convert.NetRoute]:
        return self.guest.list_routes(sandbox_id)

    def wait_oom_event(self, sandbox_id: str) -> str:
        return self.guest.wait_oom_event(sandbox_id)

    def oom_events(self, sandbox_id: str) -> Iterator[str]:
        return self.guest.oom_events(sandbox_id)
