"""Post-mortem views of the log: pure functions over recorded events.

The CLI (`sbx audit`, `sbx export`, `sbx diagram`) and embedders call the same
functions; none of them touches the host or writes to the store.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidRequest
from .names import Ev, State, Trigger
from .projection import Projector
from .state import SandboxState

FAILED, COMPENSATED, ABORTED = "FAILED", "COMPENSATED", "ABORTED"


@dataclass(frozen=True)
class TimelineRow:
    """One event as an operator reads it. `duration` is in seconds (steps and operations)."""

    position: int
    time: str
    operation: str
    step: str
    event: str
    duration: float | None
    outcome: str
    mark: str = ""          # "!" failure, "<-" compensation
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Transition:
    source: str
    trigger: str
    dest: str
    completed: bool


def iso(ns: int) -> str:
    """A recorded_at (ns since the epoch) as ISO-8601 UTC with milliseconds."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def parse_at(text: str) -> tuple[str, int]:
    """`--at`: an int position -> ("position", n); an ISO-8601 time -> ("time", ns)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return "position", int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--at {text!r}: expected a position (integer) or an ISO-8601 "
                             "time such as 2026-01-31T12:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return "time", int(when.timestamp() * 1_000_000) * 1000


def timeline(events: Iterable[Any]) -> list[TimelineRow]:
    """Rows for a sandbox's events, oldest first, with step and operation durations."""
    ops: dict[str, dict] = {}
    step_started: dict[tuple[str, int], int] = {}
    rows = []
    for e in events:
        d = e.data
        op = ops.get(d.get("op", ""))
        if e.type == Ev.OPERATION_STARTED:
            op = ops[d["op"]] = {"name": _op_name(d), "started": e.recorded_at,
                                 "last": e.recorded_at}
        duration: float | None = None
        outcome, mark, detail = _describe(e.type, d)
        if e.type == Ev.STEP_STARTED:
            step_started[(d["op"], d["index"])] = e.recorded_at
            outcome = "started"
        elif e.type in (Ev.STEP_COMPENSATED, Ev.COMPENSATION_FAILED) and op:
            duration = _secs(e.recorded_at - op["last"])
        elif e.type in (Ev.OPERATION_COMPLETED, Ev.OPERATION_ABORTED) and op:
            duration = _secs(e.recorded_at - op["started"])
        elif "index" in d and (d.get("op"), d["index"]) in step_started:
            duration = _secs(e.recorded_at - step_started.pop((d["op"], d["index"])))
        if op:
            op["last"] = e.recorded_at
        rows.append(TimelineRow(
            position=e.position, time=iso(e.recorded_at),
            operation=op["name"] if op else "", step=d.get("step", "") if op else "",
            event=e.type, duration=duration, outcome=outcome, mark=mark, detail=detail))
    return rows


def _op_name(d: dict) -> str:
    name = d.get("operation", "?")
    return f"{name} {d['container']}" if d.get("container") else name


def _secs(ns: int) -> float:
    return round(ns / 1e9, 6)


def _error(d: dict) -> str:
    err = d.get("error") or {}
    return f"{err.get('type', '')}: {err.get('message', '')}".strip(": ")


def _describe(event_type: str, d: dict) -> tuple[str, str, str]:
    """(outcome, mark, detail) of one event."""
    if event_type == Ev.OPERATION_STARTED:
        return "started", "", f"{d.get('from')} -> {d.get('to')}"
    if event_type == Ev.STEP_FAILED:
        return FAILED, "!", _error(d)
    if event_type == Ev.COMPENSATION_STARTED:
        return "compensating", "<-", ""
    if event_type == Ev.STEP_COMPENSATED:
        return COMPENSATED, "<-", ""
    if event_type == Ev.COMPENSATION_FAILED:
        return "COMPENSATION FAILED", "!", _error(d)
    if event_type == Ev.OPERATION_COMPLETED:
        return "completed", "", f"state {d.get('state')}"
    if event_type == Ev.OPERATION_ABORTED:
        return ABORTED, "!", f"state {d.get('state')}"
    if event_type == Ev.SANDBOX_LOST:
        return "LOST", "!", f"state {d.get('state', 'stopped')}"
    if event_type == Ev.PROCESS_EXITED and "op" not in d:
        return f"exit {d.get('status')}", "", f"container {d.get('container')}"
    held = [r.get("key", "") for r in d.get("acquired", ())]
    released = list(d.get("released", ()))
    detail = " ".join([*(f"+{k}" for k in held), *(f"-{k}" for k in released)])
    return "ok", "", detail


def state_at(events: Iterable[Any], at: tuple[str, int], sandbox_id: str = ""
             ) -> SandboxState:
    """Fold the events up to and including a position or a time (see `parse_at`).

    Times compare to the millisecond, as `timeline` shows them.
    """
    kind, value = at
    if kind == "time":
        value //= 1_000_000
    projector = Projector(sandbox_id)
    for e in events:
        if (e.position if kind == "position" else e.recorded_at // 1_000_000) > value:
            break
        projector.apply(e)
    if projector.state.version < 0:
        where = f"position {value}" if kind == "position" else iso(value * 1_000_000)
        raise InvalidRequest(f"sandbox {sandbox_id!r} has no events at or before {where}")
    return projector.state


def export_record(event: Any) -> dict[str, Any]:
    """Every field of a RecordedEvent as JSON-safe data; bytes become {"$base64": ...}."""
    return {name: _jsonable(value) for name, value in event._asdict().items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def path_taken(events: Iterable[Any], kind: str = "sandbox", container: str | None = None
               ) -> list[Transition]:
    """The transitions a sandbox (or one of its containers) went through, in order."""
    open_ops: dict[str, dict] = {}
    path = []
    for e in events:
        d = e.data
        if e.type == Ev.OPERATION_STARTED:
            open_ops[d["op"]] = d
        elif e.type in (Ev.OPERATION_COMPLETED, Ev.OPERATION_ABORTED) and d.get("op") in open_ops:
            op = open_ops.pop(d["op"])
            wanted = container if kind == "container" else None
            moved = e.type == Ev.OPERATION_COMPLETED or d["state"] != op["from"]
            if op.get("trigger") and op.get("container") == wanted and moved:
                path.append(Transition(op["from"], op["trigger"], d["state"],
                                       e.type == Ev.OPERATION_COMPLETED))
        elif e.type == Ev.SANDBOX_LOST and path:
            path.append(Transition(path[-1].dest, Trigger.LOSE, d.get("state", State.STOPPED),
                                   False))
    return path


def diagram(kind: str = "sandbox", taken: Sequence[Transition] = ()) -> str:
    """The lifecycle machine as a Mermaid state diagram; `taken` states and edges marked."""
    from .machines import KINDS, STATES  # here: building machines is for diagrams only
    if kind not in KINDS:
        raise InvalidRequest(f"no lifecycle machine {kind!r} (known: {', '.join(KINDS)})")
    edges = KINDS[kind].edges()
    used = {(t.source, t.trigger, t.dest) for t in taken}
    extra = [e for e in dict.fromkeys(used) if e not in edges]
    lines = ["stateDiagram-v2", "  direction LR"]
    if taken:
        states = [taken[0].source, *(t.dest for t in taken)]
        lines.append(f"  %% path taken: {' -> '.join(states)}")
        lines += ["  classDef taken fill:#d9f2d9,stroke:#2e7d32,stroke-width:2px",
                  "  classDef current fill:#2e7d32,color:white"]
    lines.append("  [*] --> new")
    for src, trigger, dest in edges + sorted(extra):
        label = trigger + (" (taken)" if (src, trigger, dest) in used else "")
        lines.append(f"  {src} --> {dest}: {label}")
    if taken:
        visited = {taken[0].source, *(t.dest for t in taken)}
        for state in STATES:
            if state in visited:
                cls = "current" if state == taken[-1].dest else "taken"
                lines.append(f"  class {state} {cls}")
    return "\n".join(lines) + "\n"
