"""intervals.lifecycle on logs a crash leaves: steps in doubt, recovery's rollback and redo.

Built from RecordedEvents as the saga writes them (the crash tests produce such logs for
real; here the shapes are written out so every branch is pinned down cheaply).
"""

from __future__ import annotations

from typing import Any

from eventstore import RecordedEvent
from sandbox_fsm.intervals import lifecycle

OP = "a" * 32


def log(*specs: tuple[str, dict[str, Any]]) -> list[RecordedEvent]:
    return [RecordedEvent(i, "sandbox-s", i, t, d, {}, f"id{i}", 1_000_000 * (i + 1), 1, "h")
            for i, (t, d) in enumerate(specs)]


def started(operation: str = "start_sandbox") -> tuple[str, dict[str, Any]]:
    return ("OperationStarted", {"op": OP, "operation": operation, "trigger": "start",
                                 "from": "created", "to": "running", "container": None})


def step(kind: str, index: int, name: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return (kind, {"op": OP, "step": name, "index": index, **extra})


def test_a_crash_rolled_back_by_recovery() -> None:
    life = lifecycle(log(
        started(), step("StepStarted", 0, "start_vm"), step("VMStarted", 0, "start_vm"),
        step("StepStarted", 1, "start_proxy"),                   # killed here
        ("CompensationStarted", {"op": OP}), step("StepCompensated", 1, "start_proxy"),
        step("StepCompensated", 0, "start_vm"), ("OperationAborted", {"op": OP,
                                                                      "state": "created"}),
        ("SandboxLost", {"dead": ["guest"], "exit_status": 255, "state": "stopped"})))
    (op,) = life.operations
    assert op.recovery and op.status == "aborted" and op.state == "created"
    assert [(s.kind, s.step, s.status) for s in op.steps] == [
        ("step", "start_vm", "ok"), ("step", "start_proxy", "indoubt"),
        ("compensation", "start_proxy", "compensated"),
        ("compensation", "start_vm", "compensated")]
    doubt = op.steps[1]
    assert (doubt.start_position, doubt.end_position) == (3, 4)
    assert all(s.recovery for s in op.steps if s.kind == "compensation")
    assert [(f.kind, f.position) for f in life.facts] == [("lost", 8)]


def test_a_teardown_rolled_forward_and_one_left_open() -> None:
    life = lifecycle(log(
        started("stop_sandbox"), step("StepStarted", 0, "stop_vm"),     # killed here
        step("StepStarted", 0, "stop_vm"), step("VMStopped", 0, "stop_vm"),
        ("OperationCompleted", {"op": OP, "state": "stopped"})))
    (op,) = life.operations
    assert op.recovery and op.status == "completed"
    assert [(s.status, s.start_position, s.end_position) for s in op.steps] == [
        ("indoubt", 1, 2), ("ok", 2, 3)]
    assert op.steps[1].start == 3_000_000 and op.steps[1].end == 4_000_000

    open_op = lifecycle(log(started(), step("StepStarted", 0, "start_vm"))).operations[0]
    assert open_op.status == "open" and not open_op.recovery
    assert [s.status for s in open_op.steps] == ["indoubt"]
