"""Operations and their steps as time intervals: what a Gantt chart and a trace draw.

Built on `audit.timeline` (which already pairs each outcome with its intent and computes
the durations an operator sees in `sbx audit`), so the report, the traces and the audit
table can never disagree on when a step started or how long it took. What the timeline
cannot say by itself is added here from the events alone: which operation a row belongs
to, steps left in doubt by a crash, and which actions were recovery's, not the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import audit
from .names import Ev, Op

RECOVERY_OPERATIONS = frozenset({Op.RELEASE_LOST_SANDBOX})
FACT_KINDS = {Ev.PROCESS_EXITED: "exit", Ev.CONTAINER_OOM_KILLED: "oom", Ev.SANDBOX_LOST: "lost",
              Ev.RESOURCES_RELEASED: "released"}


@dataclass
class Interval:
    """A step's run or a compensation's run (`kind` "step" or "compensation").

    `status`: ok, failed, compensated, compensation_failed or indoubt (intent recorded,
    no outcome: the process died). `recovery`: run by recovery after a crash.
    """

    kind: str
    step: str
    index: int
    start: int                 # ns since the epoch
    end: int
    start_position: int
    end_position: int
    status: str
    error: str = ""
    recovery: bool = False
    event: str = ""            # the event that ended it (the outcome's type)


@dataclass
class Operation:
    """One saga: `status` completed, aborted or open (no end in the log)."""

    seq: int
    op: str
    operation: str
    trigger: str
    container: str | None
    source: str
    target: str
    start: int
    end: int
    start_position: int
    end_position: int
    status: str = "open"
    state: str = ""
    recovery: bool = False
    error: str = ""
    steps: list[Interval] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.operation} {self.container}" if self.container else self.operation


@dataclass(frozen=True)
class Fact:
    """An event outside any operation: a process exit, an OOM kill, a lost sandbox, ..."""

    position: int
    time: int
    type: str
    kind: str
    text: str
    attributes: dict[str, Any]


@dataclass
class Lifecycle:
    """A sandbox's operations and facts, oldest first."""

    sandbox: str
    operations: list[Operation]
    facts: list[Fact]


def lifecycle(events: Sequence[Any], sandbox_id: str = "") -> Lifecycle:
    """Intervals of one sandbox's events (its stream, oldest first)."""
    rows = audit.timeline(events)
    ops: dict[str, Operation] = {}
    order: list[Operation] = []
    facts: list[Fact] = []
    started: dict[tuple[str, int], Any] = {}
    failed: set[str] = set()
    for event, row in zip(events, rows, strict=True):
        data = event.data
        op = ops.get(data.get("op", ""))
        if event.type == Ev.OPERATION_STARTED:
            op = ops[data["op"]] = _operation(len(order), event)
            order.append(op)
        elif op is None:
            facts.append(_fact(event, row))
            continue
        op.end, op.end_position = event.recorded_at, event.position
        _apply(op, event, row, started, failed)
    for (op_id, _index), intent in started.items():
        _in_doubt(ops[op_id], intent)
    return Lifecycle(sandbox_id, order, facts)


def _operation(seq: int, event: Any) -> Operation:
    d = event.data
    return Operation(
        seq=seq, op=d["op"], operation=d.get("operation", "?"), trigger=d.get("trigger", ""),
        container=d.get("container"), source=d.get("from", ""), target=d.get("to", ""),
        start=event.recorded_at, end=event.recorded_at, start_position=event.position,
        end_position=event.position,
        recovery=d.get("operation") in RECOVERY_OPERATIONS)


def _apply(op: Operation, event: Any, row: audit.TimelineRow,
           started: dict[tuple[str, int], Any], failed: set[str]) -> None:
    d = event.data
    key = (op.op, d.get("index", -1))
    if event.type == Ev.STEP_STARTED:
        previous = started.get(key)
        if previous is not None:
            # The same step's intent again: recovery rolling the operation forward.
            op.recovery = True
            _in_doubt(op, previous, event)
        started[key] = event
    elif event.type == Ev.STEP_FAILED:
        failed.add(op.op)
        op.error = row.detail
        _close(op, event, row, started.pop(key, None), "failed")
    elif event.type == Ev.COMPENSATION_STARTED and op.op not in failed:
        op.recovery = True           # a rollback with no failure: a crash was recovered
        for intent in [started.pop(k) for k in list(started) if k[0] == op.op]:
            _in_doubt(op, intent, event)
    elif event.type in (Ev.STEP_COMPENSATED, Ev.COMPENSATION_FAILED):
        status = "compensated" if event.type == Ev.STEP_COMPENSATED else "compensation_failed"
        _close(op, event, row, None, status, kind="compensation")
    elif event.type in (Ev.OPERATION_COMPLETED, Ev.OPERATION_ABORTED):
        op.status = "completed" if event.type == Ev.OPERATION_COMPLETED else "aborted"
        op.state = d.get("state", "")
    elif "index" in d and key in started:
        _close(op, event, row, started.pop(key), "ok")


def _close(op: Operation, event: Any, row: audit.TimelineRow, intent: Any, status: str,
           kind: str = "step") -> None:
    """An interval ending at `event`; it began at its intent or `row.duration` before."""
    if intent is not None:
        start, start_position = intent.recorded_at, intent.position
    else:
        start = event.recorded_at - int((row.duration or 0) * 1e9)
        start_position = event.position
    op.steps.append(Interval(
        kind=kind, step=event.data.get("step", ""), index=event.data.get("index", -1),
        start=max(start, op.start), end=event.recorded_at, start_position=start_position,
        end_position=event.position, status=status,
        error=row.detail if status in ("failed", "compensation_failed") else "",
        recovery=op.recovery and kind == "compensation", event=event.type))


def _in_doubt(op: Operation, intent: Any, until: Any = None) -> None:
    """A step whose intent has no outcome: it runs until the operation's next event."""
    op.steps.append(Interval(
        kind="step", step=intent.data.get("step", ""), index=intent.data.get("index", -1),
        start=intent.recorded_at, end=until.recorded_at if until is not None else op.end,
        start_position=intent.position,
        end_position=until.position if until is not None else op.end_position,
        status="indoubt", error="intent recorded, no outcome (the process died)"))
    op.steps.sort(key=lambda s: (s.start, s.end_position))


def _fact(event: Any, row: audit.TimelineRow) -> Fact:
    d = event.data
    kind = FACT_KINDS.get(event.type, "fact")
    if event.type == Ev.PROCESS_EXITED:
        who = d.get("container", "")
        if d.get("exec_id"):
            who += f" exec {d['exec_id']}"
        text = f"{who} exited with status {d.get('status')}"
    elif event.type == Ev.CONTAINER_OOM_KILLED:
        text = f"container {d.get('container', '')} OOM-killed"
    else:
        text = " ".join(x for x in (row.outcome, row.detail) if x)
    attributes = {k: v for k, v in d.items() if isinstance(v, str | int | float | bool)}
    return Fact(event.position, event.recorded_at, event.type, kind, text, attributes)
