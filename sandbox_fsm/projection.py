"""`project(events) -> SandboxState`: the pure fold of a sandbox's stream.

Saga events keep track of the open operation and its step records (what recovery
needs); domain events carry `acquired` resources and `released` keys, which keep the
ledger; the lifecycle state changes only with OperationCompleted/OperationAborted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .names import ACTIVE, Ev, Op, State
from .saga import StepRecord, outcome_of
from .state import ContainerState, SandboxState

TEARDOWN_STATES = {Op.STOP_SANDBOX: State.STOPPED, Op.DELETE_SANDBOX: State.DELETED}


class Projector:
    """Incremental fold: `apply` one event at a time (snapshots store `state.to_dict()`)."""

    def __init__(self, sandbox_id: str, state: SandboxState | None = None) -> None:
        self.state = state or SandboxState(id=sandbox_id)

    def apply(self, event: Any) -> None:
        s = self.state
        s.version, s.position = event.version, event.position
        handler = _HANDLERS.get(event.type)
        data = event.data
        if handler:
            handler(s, data)
        elif "op" in data and s.operation and data["op"] == s.operation["op"]:
            _outcome(s, data)

    def apply_all(self, events: Iterable[Any]) -> SandboxState:
        for event in events:
            self.apply(event)
        return self.state


def project(events: Iterable[Any], sandbox_id: str = "") -> SandboxState:
    """Fold a sandbox's events, oldest first, into its state."""
    return Projector(sandbox_id).apply_all(events)


def _record(s: SandboxState, data: dict) -> StepRecord | None:
    if not s.operation or s.operation["op"] != data.get("op"):
        return None
    return s.operation["records"].get(str(data["index"]))


def _op_started(s: SandboxState, data: dict) -> None:
    s.operation = {**data, "records": {}, "compensating": False}
    if data.get("operation") == Op.CREATE_SANDBOX:
        # A new incarnation of a deleted id starts afresh.
        s.config, s.containers, s.lost = data.get("config") or {}, {}, False


def _step_started(s: SandboxState, data: dict) -> None:
    if s.operation and s.operation["op"] == data["op"]:
        s.operation["records"][str(data["index"])] = StepRecord(
            data["index"], data["step"], data.get("args", {}))


def _outcome(s: SandboxState, data: dict) -> None:
    record = _record(s, data)
    if record is not None:
        record.outcome = outcome_of(data)
    _ledger(s, data, owner=[data["op"], data.get("index")])


def _ledger(s: SandboxState, data: dict, owner: list | None = None) -> None:
    for res in data.get("acquired", ()):
        s.ledger[res["key"]] = {**res, "owner": owner}
    for key in data.get("released", ()):
        s.ledger.pop(key, None)


def _step_failed(s: SandboxState, data: dict) -> None:
    record = _record(s, data)
    if record is not None:
        record.failed = True


def _compensation_started(s: SandboxState, data: dict) -> None:
    if s.operation and s.operation["op"] == data["op"]:
        s.operation["compensating"] = True


def _step_compensated(s: SandboxState, data: dict) -> None:
    record = _record(s, data)
    if record is not None:
        record.compensated = True
    owner = [data["op"], data["index"]]
    for key in [k for k, r in s.ledger.items() if r.get("owner") == owner]:
        del s.ledger[key]


def _finished(s: SandboxState, data: dict, completed: bool) -> None:
    op = s.operation
    if not op or op["op"] != data["op"]:
        return
    state = data["state"]
    cid = op.get("container")
    if cid is None:
        s.state = state
        if completed and op.get("operation") in TEARDOWN_STATES:
            for c in s.containers.values():
                if c.state != State.DELETED:
                    c.state = TEARDOWN_STATES[op["operation"]]
    elif completed and op.get("operation") == Op.CREATE_CONTAINER:
        s.containers[cid] = ContainerState(
            id=cid, state=state, config=(op.get("params") or {}).get("config") or {})
    elif cid in s.containers:
        s.containers[cid].state = state
    elif state == State.FAILED:
        s.containers[cid] = ContainerState(
            id=cid, state=state, config=(op.get("params") or {}).get("config") or {})
    s.operation = None


def _op_completed(s: SandboxState, data: dict) -> None:
    _finished(s, data, completed=True)


def _op_aborted(s: SandboxState, data: dict) -> None:
    _finished(s, data, completed=False)


def _process_started(s: SandboxState, data: dict) -> None:
    _outcome(s, data)
    c = s.containers.get(data["container"])
    if c is not None:
        c.processes[data["exec_id"]] = {"status": State.RUNNING}


def _process_exited(s: SandboxState, data: dict) -> None:
    if "op" in data:
        _outcome(s, data)
    c = s.containers.get(data["container"])
    if c is None:
        return
    exec_id = data.get("exec_id") or ""
    if exec_id:
        c.processes[exec_id] = {"status": data["status"]}
    else:
        c.exit_status = data["status"]


def _sandbox_lost(s: SandboxState, data: dict) -> None:
    s.lost = True
    for c in s.containers.values():
        if c.state in ACTIVE:
            c.state = State.STOPPED
            if c.exit_status is None:
                c.exit_status = data.get("exit_status", 255)
    s.state = data.get("state", State.STOPPED)


def _resources_released(s: SandboxState, data: dict) -> None:
    _ledger(s, data)


_HANDLERS = {
    Ev.OPERATION_STARTED: _op_started,
    Ev.STEP_STARTED: _step_started,
    Ev.STEP_FAILED: _step_failed,
    Ev.COMPENSATION_STARTED: _compensation_started,
    Ev.STEP_COMPENSATED: _step_compensated,
    Ev.OPERATION_ABORTED: _op_aborted,
    Ev.OPERATION_COMPLETED: _op_completed,
    Ev.PROCESS_STARTED: _process_started,
    Ev.PROCESS_EXITED: _process_exited,
    Ev.SANDBOX_LOST: _sandbox_lost,
    Ev.RESOURCES_RELEASED: _resources_released,
}
