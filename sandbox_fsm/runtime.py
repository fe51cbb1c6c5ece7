"""`Runtime`: the embedding API. Every lifecycle change goes through the saga engine.

One Runtime per process; a per-sandbox lock serialises operations inside the process and
the exact `expected_version` of every append serialises them across processes.
"""

from __future__ import annotations

import builtins
import copy
import os
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_io import AgentClient
from eventstore import NO_STREAM, EventStore, NewEvent, RecordedEvent, WrongExpectedVersion

from . import host
from .config import ConfigError, RuntimeConfig, load_config
from .errors import Conflict, InvalidRequest, NotFound, OperationFailed
from .guest_calls import GuestCalls
from .machines import CONTAINER, SANDBOX
from .names import STARTED, Ev, State
from .operations import container as container_ops
from .operations import guest as guest_ops
from .operations import sandbox as sandbox_ops
from .operations.context import context_for
from .projection import Projector
from .saga import CrashKnob, Operation, Outcome, Saga, StreamWriter
from .spec import ContainerConfig, SandboxConfig
from .state import SandboxState

if TYPE_CHECKING:
    from .recovery import RecoveryReport

STREAM_PREFIX = "sandbox-"
FOLD_CACHE = 1024   # sandboxes whose last fold is kept, most recently used


def stream_of(sandbox_id: str) -> str:
    return STREAM_PREFIX + sandbox_id


class Runtime(GuestCalls):
    """Drive sandboxes and containers; `state()` answers from the log alone."""

    def __init__(self, store: EventStore, runtime_dir: str | os.PathLike[str],
                 config: RuntimeConfig, *, snapshot_every: int = 200) -> None:
        self.store = store
        self.runtime_dir = Path(os.path.abspath(runtime_dir))
        self.config = config
        self.driver = config.hypervisor.driver
        self.snapshot_every = snapshot_every
        self.knob = CrashKnob.from_env()
        owner = host.identity_of(os.getpid())
        assert owner is not None, "our own process has a /proc entry"
        self.owner = owner
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._clients: dict[str, AgentClient] = {}
        self._folds: OrderedDict[str, SandboxState] = OrderedDict()   # sandbox -> last fold
        self.last_recovery: RecoveryReport | None = None
        self._replies: dict[str, Any] = {}

    @classmethod
    def open(cls, state_dir: str | os.PathLike[str], runtime_dir: str | os.PathLike[str],
             config: RuntimeConfig | str | os.PathLike[str] | None = None, *,
             recover: bool = True, durable: bool = True, snapshot_every: int = 200) -> Runtime:
        """Open (creating if needed) the log in state_dir; recover unless told not to."""
        if config is None:
            config = RuntimeConfig.default()
        elif not isinstance(config, RuntimeConfig):
            config = load_config(config)
        if config.hypervisor.use_vsock:
            raise ConfigError(config.source, "[hypervisor] use_vsock",
                              "vsock is not supported on this host", "false")
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
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def state(self, sandbox_id: str) -> SandboxState:
        """The sandbox as its events say (deleted ones included); NotFound if never created.

        Folds only what was appended since the last call (events never change once
        written), starting from a cached fold, else the stream's snapshot; the caller gets
        its own copy.
        """
        stream = stream_of(sandbox_id)
        with self._locks_guard:
            cached = self._folds.get(sandbox_id)
        if cached is not None:
            projector, start = Projector(sandbox_id, copy.deepcopy(cached)), cached.version + 1
        elif (snap := self.store.load_snapshot(stream)) is not None:
            projector = Projector(sandbox_id, SandboxState.from_dict(snap.state))
            start = snap.version + 1
        else:
            projector, start = Projector(sandbox_id), 0
        state = projector.apply_all(self.store.read_stream(stream, from_version=start))
        if state.version < 0:
            raise NotFound(f"no sandbox {sandbox_id!r} in the log")
        if cached is None or state.version > cached.version:
            with self._locks_guard:
                self._folds[sandbox_id] = copy.deepcopy(state)
                self._folds.move_to_end(sandbox_id)
                if len(self._folds) > FOLD_CACHE:
                    self._folds.popitem(last=False)
        return state

    def list_sandboxes(self) -> builtins.list[SandboxState]:
        """Every sandbox in the log (deleted ones included), folded."""
        return [self.state(s[len(STREAM_PREFIX):]) for s in self.store.streams(STREAM_PREFIX)]

    def list(self) -> builtins.list[SandboxState]:
        """Deprecated alias of `list_sandboxes` (kept for one release)."""
        warnings.warn("Runtime.list() is deprecated; use Runtime.list_sandboxes()",
                      DeprecationWarning, stacklevel=2)
        return self.list_sandboxes()

    def live_sandboxes(self) -> tuple[int, builtins.list[str]]:
        """(sandboxes in the log, ids of those not finished deleting), by reading only
        each stream's last event: no fold for a sandbox that is gone."""
        streams = list(self.store.streams(STREAM_PREFIX))
        live = []
        for stream in streams:
            last = self.store.last_event(stream)
            if last is not None and not (last.type == Ev.OPERATION_COMPLETED
                                         and last.data.get("state") == State.DELETED):
                live.append(stream[len(STREAM_PREFIX):])
        return len(streams), live

    def events(self, sandbox_id: str) -> builtins.list[RecordedEvent]:
        events = list(self.store.read_stream(stream_of(sandbox_id)))
        if not events:
            raise NotFound(f"no sandbox {sandbox_id!r} in the log")
        return events

    @property
    def private_paths(self) -> builtins.list[str]:
        """The runtime dir and the event store: kept out of every container's host view."""
        return [str(self.runtime_dir), self.store.path]

    def layout(self, sandbox_id: str) -> host.SandboxLayout:
        return host.SandboxLayout(self.runtime_dir, sandbox_id)

    # -- the guest --------------------------------------------------------------------------

    def agent_for(self, state: SandboxState) -> AgentClient:
        """A client for the sandbox's guest, dialled lazily, kept while the URL holds."""
        url = state.agent_url
        if not url:
            raise InvalidRequest(f"sandbox {state.id!r} has no running guest (it is {state.state})")
        client = self._clients.get(state.id)
        if client is None or client.url != url:
            timeouts = self.config.agent.timeouts
            process = state.proxy or state.guest
            client = AgentClient(
                url, keep_connection=self.config.agent.keep_connection,
                timeouts={"Check": timeouts.for_rpc("Check"),
                          "Version": timeouts.for_rpc("Check"),
                          "default": timeouts.default or None,
                          **{rpc: timeouts.for_rpc(rpc) for rpc in timeouts.rpc}},
                proxy_pid=process["pid"] if process else None, sandbox_id=state.id)
            self._clients[state.id] = client
        return client

    def forget_agent(self, sandbox_id: str) -> None:
        client = self._clients.pop(sandbox_id, None)
        if client is not None:
            client.close()

    # -- the engine -------------------------------------------------------------------------

    def _lock(self, sandbox_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(sandbox_id, threading.Lock())

    def _current(self, sandbox_id: str, *, may_be_new: bool = False) -> SandboxState:
        try:
            state = self.state(sandbox_id)
        except NotFound:
            if not may_be_new:
                raise
            return SandboxState(id=sandbox_id)
        if state.operation is not None:
            raise self._busy(state)
        return state

    def _busy(self, state: SandboxState) -> Conflict:
        op = state.operation or {}
        owner = op.get("owner") or {}
        alive = owner and host.is_alive(host.ProcessIdentity(owner["pid"], owner["start_time"]))
        who = f"pid {owner.get('pid')}" if alive else "a process that died (run recover)"
        return Conflict(f"sandbox {state.id!r} is busy: {op.get('operation')} "
                        f"(op {op.get('op')}) is in progress in {who}")

    def _run(self, state: SandboxState, operation: Operation, *, container_id: str | None,
             from_state: str, to_state: str, params: dict | None = None,
             extra: dict | None = None) -> Outcome:
        ctx = context_for(self, state.id, self.layout(state.id), container_id, params)
        writer = StreamWriter(self.store, stream_of(state.id), state.version)
        header = {"kind": "container" if container_id else "sandbox",
                  "container": container_id, "params": params or {},
                  "owner": {"pid": self.owner.pid, "start_time": self.owner.start_time},
                  **(extra or {})}
        outcome = Saga(writer, self.knob).run(
            operation, ctx, op=uuid.uuid4().hex, header=header, from_state=from_state,
            to_state=to_state, records=ctx.records)
        self._maybe_snapshot(state.id, writer.version)
        if not outcome.completed:
            held = self.state(state.id).held() if outcome.state == State.FAILED else []
            what = f"{operation.name} of container {container_id!r}" if container_id \
                else operation.name
            raise OperationFailed(what, outcome.failed_step or "?", outcome.error or "",
                                  sandbox_id=state.id, state=outcome.state, held=held,
                                  container_id=container_id)
        return outcome

    def _maybe_snapshot(self, sandbox_id: str, version: int) -> None:
        snap = self.store.load_snapshot(stream_of(sandbox_id))
        if version - (snap.version if snap else -1) >= self.snapshot_every:
            state = self.state(sandbox_id)
            self.store.save_snapshot(stream_of(sandbox_id), state.version, state.to_dict())

    def _sandbox_op(self, sandbox_id: str, operation: Operation, *, may_be_new: bool = False,
                    extra: dict | None = None, params: dict | None = None) -> SandboxState:
        with self._lock(sandbox_id):
            state = self._current(sandbox_id, may_be_new=may_be_new)
            assert operation.trigger is not None, "a sandbox operation is a transition"
            to = SANDBOX.target(state.state, operation.trigger,
                                what=f"sandbox {sandbox_id!r}")
            self._run(state, operation, container_id=None, from_state=state.state,
                      to_state=to, extra=extra, params=params)
            return self.state(sandbox_id)

    def _container_op(self, sandbox_id: str, container_id: str, operation: Operation, *,
                      params: dict | None = None, need_guest: bool = True) -> SandboxState:
        with self._lock(sandbox_id):
            state = self._current(sandbox_id)
            if need_guest and state.state != "running":
                raise InvalidRequest(
                    f"cannot {operation.name.replace('_', ' ')} {container_id!r}: sandbox "
                    f"{sandbox_id!r} is {state.state}, not running")
            current = state.containers.get(container_id)
            cstate = current.state if current else State.NEW
            if operation.trigger is None:
                if cstate not in (State.RUNNING, State.PAUSED, State.CREATED):
                    raise InvalidRequest(
                        f"cannot {operation.name} in container {container_id!r} of sandbox "
                        f"{sandbox_id!r}: it is {cstate}")
                to = cstate
            else:
                to = CONTAINER.target(cstate, operation.trigger,
                                      what=f"container {container_id!r} of sandbox {sandbox_id!r}")
            self._run(state, operation, container_id=container_id, from_state=cstate,
                      to_state=to, params=params)
            return self.state(sandbox_id)

    # -- sandbox lifecycle ------------------------------------------------------------------

    def create_sandbox(self, config: SandboxConfig) -> SandboxState:
        config = config.validated()
        return self._sandbox_op(config.id, sandbox_ops.CREATE, may_be_new=True,
                                extra={"config": config.to_dict()})

    def start_sandbox(self, sandbox_id: str) -> SandboxState:
        """Start the guest; with a network config or dynamic tracing, set them up too."""
        opts = sandbox_ops.options(self.config, self.state(sandbox_id).config)
        return self._sandbox_op(sandbox_id, sandbox_ops.start(opts), params=opts)

    def stop_sandbox(self, sandbox_id: str) -> SandboxState:
        opts = sandbox_ops.options(self.config, self.state(sandbox_id).config)
        return self._sandbox_op(sandbox_id, sandbox_ops.stop(opts), params=opts)

    def delete_sandbox(self, sandbox_id: str, force: bool = False) -> SandboxState:
        """Delete a created or stopped sandbox; with force, stop a running one first."""
        if force and self.state(sandbox_id).state in STARTED:
            self.stop_sandbox(sandbox_id)
        return self._sandbox_op(sandbox_id, sandbox_ops.DELETE)

    # -- containers -------------------------------------------------------------------------

    def create_container(self, sandbox_id: str, config: ContainerConfig) -> SandboxState:
        config = config.validated()
        try:  # the seed's rules, checked before anything touches the host
            container_ops.guest_request(config, self.config, sandbox_id, {})
        except ValueError as exc:
            raise InvalidRequest(
                f"container {config.id!r} of sandbox {sandbox_id!r}: {exc}") from exc
        return self._container_op(sandbox_id, config.id, container_ops.create(config),
                                  params={"config": config.to_dict()})

    def start_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self._container_op(sandbox_id, container_id, container_ops.START)

    def stop_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self._container_op(sandbox_id, container_id, container_ops.STOP, need_guest=False)

    def delete_container(self, sandbox_id: str, container_id: str) -> SandboxState:
        return self._container_op(sandbox_id, container_id, container_ops.DELETE,
                                  need_guest=False)

    def exec(self, sandbox_id: str, container_id: str, args: builtins.list[str], *,
             env: dict[str, str] | None = None, cwd: str | None = None,
             user: str | None = None, terminal: bool = False) -> str:
        """Start another process in a running container; returns its exec id."""
        if not args:
            raise InvalidRequest(f"exec in {container_id!r}: empty command")
        state = self._container_op(sandbox_id, container_id, container_ops.EXEC, params={
            "args": list(args), "env": env or {}, "cwd": cwd, "user": user,
            "terminal": terminal})
        return next(reversed(state.containers[container_id].processes))

    def kill(self, sandbox_id: str, container_id: str, signal: int, all: bool = False,
             exec_id: str | None = None) -> None:
        self._container_op(sandbox_id, container_id, container_ops.KILL,
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
        status = client.wait_process(container_id, exec_id or container_id)
        self.record_fact(sandbox_id, NewEvent(Ev.PROCESS_EXITED, {
            "container": container_id, "exec_id": exec_id or "", "status": status}))
        return status

    def read_stdout(self, sandbox_id: str, container_id: str, exec_id: str | None = None,
                    size: int = 65536) -> bytes:
        return self._process_client(sandbox_id, container_id).read_stdout(
            container_id, exec_id or container_id, size)

    def read_stderr(self, sandbox_id: str, container_id: str, exec_id: str | None = None,
                    size: int = 65536) -> bytes:
        return self._process_client(sandbox_id, container_id).read_stderr(
            container_id, exec_id or container_id, size)

    def write_stdin(self, sandbox_id: str, container_id: str, data: bytes,
                    exec_id: str | None = None) -> int:
        return self._process_client(sandbox_id, container_id).write_stdin(
            container_id, exec_id or container_id, data)

    def close_stdin(self, sandbox_id: str, container_id: str, exec_id: str | None = None) -> None:
        """CloseStdin, logged (StdinClosed)."""
        self._container_op(sandbox_id, container_id, guest_ops.CLOSE_STDIN,
                           params={"exec_id": exec_id})

    def record_fact(self, sandbox_id: str, event: NewEvent, *, attempts: int = 50) -> bool:
        """Append an observed fact between operations, never inside another one.

        Returns False when the sandbox stayed busy (the fact is then not recorded).
        """
        for _ in range(attempts):
            with self._lock(sandbox_id):
                state = self.state(sandbox_id)
                if state.operation is None:
                    try:
                        self.store.append(stream_of(sandbox_id), [event],
                                          expected_version=state.version if state.version >= 0
                                          else NO_STREAM)
                        return True
                    except WrongExpectedVersion:
                        pass
            time.sleep(0.02)
        return False

    def recover(self, *, dry_run: bool = False, step_timeout: float = 30.0,
                sandbox_timeout: float | None = None, parallel: int = 8) -> RecoveryReport:
        """Finish what a dead process left half-done and match ledgers to the host (see
        recovery.py); `open` runs it and keeps the report in `last_recovery`."""
        from .recovery import recover

        self.last_recovery = recover(self, dry_run=dry_run, step_timeout=step_timeout,
                                     sandbox_timeout=sandbox_timeout, parallel=parallel)
        return self.last_recovery
