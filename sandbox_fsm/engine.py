"""`Engine`: runs operations and records facts, one at a time per sandbox.

A per-sandbox lock serialises operations inside the process; the exact
`expected_version` of every append serialises them across processes. The engine asks
the lifecycle machine where a trigger leads, runs the operation as a saga (saga.py) with
a context over a `StepHost`, and snapshots the stream now and then. The `Runtime` facade
and recovery both drive sandboxes through it.
"""

from __future__ import annotations

import threading
import time
import uuid

from eventstore import NO_STREAM, NewEvent, WrongExpectedVersion

from . import host
from .errors import Conflict, InvalidRequest, NotFound, OperationFailed
from .machines import CONTAINER, SANDBOX
from .names import ACTIVE, State
from .operations.context import StepHost, context_for
from .repository import Repository, stream_of
from .saga import CrashKnob, Operation, Outcome, Saga, StreamWriter
from .state import SandboxState

FACT_ATTEMPTS = 50
FACT_RETRY_S = 0.02


class Engine:
    """Operations and facts on the sandboxes of one repository."""

    def __init__(self, repo: Repository, steps_host: StepHost, *, knob: CrashKnob,
                 owner: host.ProcessIdentity) -> None:
        self.repo = repo
        self.host = steps_host
        self.knob = knob
        self.owner = owner
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, sandbox_id: str) -> threading.Lock:
        """The lock every operation on this sandbox holds in this process."""
        with self._guard:
            return self._locks.setdefault(sandbox_id, threading.Lock())

    def current(self, sandbox_id: str, *, may_be_new: bool = False) -> SandboxState:
        """The sandbox, or Conflict when an operation is open on it (held by the lock)."""
        try:
            state = self.repo.state(sandbox_id)
        except NotFound:
            if not may_be_new:
                raise
            return SandboxState(id=sandbox_id)
        if state.operation is not None:
            raise busy(state)
        return state

    def saga(self, state: SandboxState) -> Saga:
        """A saga appending to the sandbox's stream right after `state`."""
        return Saga(StreamWriter(self.repo.store, stream_of(state.id), state.version), self.knob)

    def run(self, state: SandboxState, operation: Operation, *, container_id: str | None,
            from_state: str, to_state: str, params: dict | None = None,
            extra: dict | None = None) -> Outcome:
        """Run `operation` on the sandbox (held by the lock); OperationFailed unless it
        completed, after its compensations ran."""
        ctx = context_for(self.host, state.id, self.host.layout(state.id), container_id, params)
        saga = self.saga(state)
        header = {"kind": "container" if container_id else "sandbox",
                  "container": container_id, "params": params or {},
                  "owner": {"pid": self.owner.pid, "start_time": self.owner.start_time},
                  **(extra or {})}
        outcome = saga.run(operation, ctx, op=uuid.uuid4().hex, header=header,
                           from_state=from_state, to_state=to_state, records=ctx.records)
        self.repo.maybe_snapshot(state.id, saga.writer.version)
        if not outcome.completed:
            held = self.repo.state(state.id).held() if outcome.state == State.FAILED else []
            what = f"{operation.name} of container {container_id!r}" if container_id \
                else operation.name
            raise OperationFailed(what, outcome.failed_step or "?", outcome.error or "",
                                  sandbox_id=state.id, state=outcome.state, held=held,
                                  container_id=container_id,
                                  rolled="forward" if operation.on_crash == "forward"
                                  else "back")
        return outcome

    def sandbox_op(self, sandbox_id: str, operation: Operation, *, may_be_new: bool = False,
                   extra: dict | None = None, params: dict | None = None) -> SandboxState:
        """A sandbox transition: the machine says where `operation.trigger` leads."""
        with self.lock(sandbox_id):
            state = self.current(sandbox_id, may_be_new=may_be_new)
            assert operation.trigger is not None, "a sandbox operation is a transition"
            to = SANDBOX.target(state.state, operation.trigger, what=f"sandbox {sandbox_id!r}")
            self.run(state, operation, container_id=None, from_state=state.state,
                     to_state=to, extra=extra, params=params)
            return self.repo.state(sandbox_id)

    def container_op(self, sandbox_id: str, container_id: str, operation: Operation, *,
                     params: dict | None = None, need_guest: bool = True,
                     recorded: dict | None = None) -> SandboxState:
        """A container operation: a transition, or (no trigger) one that keeps its state.
        `recorded` (default: `params`) is what OperationStarted keeps of the params."""
        with self.lock(sandbox_id):
            state = self.current(sandbox_id)
            if need_guest and state.state != State.RUNNING:
                raise InvalidRequest(
                    f"cannot {operation.name.replace('_', ' ')} {container_id!r}: sandbox "
                    f"{sandbox_id!r} is {state.state}, not running")
            current = state.containers.get(container_id)
            cstate = current.state if current else State.NEW
            if operation.trigger is None:
                if cstate not in ACTIVE:
                    raise InvalidRequest(
                        f"cannot {operation.name} in container {container_id!r} of sandbox "
                        f"{sandbox_id!r}: it is {cstate}")
                to = cstate
            else:
                to = CONTAINER.target(cstate, operation.trigger,
                                      what=f"container {container_id!r} of sandbox {sandbox_id!r}")
            self.run(state, operation, container_id=container_id, from_state=cstate,
                     to_state=to, params=params,
                     extra=None if recorded is None else {"params": recorded})
            return self.repo.state(sandbox_id)

    def guest_op(self, sandbox_id: str, operation: Operation, params: dict) -> SandboxState:
        """An operation on the running guest that leaves the sandbox's state as it is."""
        with self.lock(sandbox_id):
            state = self.current(sandbox_id)
            if state.state != State.RUNNING:
                raise InvalidRequest(f"cannot {operation.name.replace('_', ' ')} in sandbox "
                                     f"{sandbox_id!r}: it is {state.state}, not running")
            self.run(state, operation, container_id=None, from_state=state.state,
                     to_state=state.state, params=params)
            return self.repo.state(sandbox_id)

    def record_fact(self, sandbox_id: str, event: NewEvent, *,
                    attempts: int = FACT_ATTEMPTS) -> bool:
        """Append an observed fact between operations, never inside another one.

        Returns False when the sandbox stayed busy (the fact is then not recorded).
        """
        for _ in range(attempts):
            with self.lock(sandbox_id):
                state = self.repo.state(sandbox_id)
                if state.operation is None:
                    try:
                        self.repo.store.append(stream_of(sandbox_id), [event],
                                               expected_version=state.version
                                               if state.version >= 0 else NO_STREAM)
                        return True
                    except WrongExpectedVersion:
                        pass
            time.sleep(FACT_RETRY_S)
        return False


def busy(state: SandboxState) -> Conflict:
    """The Conflict for a sandbox with an open operation, naming who holds it."""
    op = state.operation or {}
    owner = op.get("owner") or {}
    alive = owner and host.is_alive(host.ProcessIdentity(owner["pid"], owner["start_time"]))
    who = f"pid {owner.get('pid')}" if alive else "a process that died (run recover)"
    return Conflict(f"sandbox {state.id!r} is busy: {op.get('operation')} "
                    f"(op {op.get('op')}) is in progress in {who}")
