"""`render_report(...)`: one self-contained HTML page for the sandboxes an operator picks.

Everything is inline (styles, script, data, diagrams): the file opens with no network,
from a mail attachment or an incident ticket. The data each sandbox carries is what the
log says, folded by the project's own code (`intervals.lifecycle`, `audit.path_taken`,
`audit.diagram`, the `Projector`); the page's script only draws it and lets one zoom,
group and pick a position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2

from .. import audit
from ..intervals import Interval, Lifecycle, Operation, lifecycle
from . import positions
from .statepath import state_path_svg


@dataclass(frozen=True)
class Verification:
    """What `EventStore.verify` said, and against which anchor (if one was given)."""

    ok: bool
    checked: int
    last_position: int
    last_hash: str
    first_bad_position: int | None = None
    reason: str = ""
    anchor: tuple[int, str] | None = None

    @classmethod
    def of(cls, report: Any, anchor: tuple[int, str] | None) -> Verification:
        return cls(report.ok, report.checked, report.last_position, report.last_hash,
                   report.first_bad_position, report.reason or "", anchor)

    @property
    def ok_up_to(self) -> int:
        """The last position whose chain link checked out."""
        if self.ok:
            return self.last_position
        return (self.first_bad_position or 0) - 1


def _us(ns: int, t0: int) -> int:
    return (ns - t0) // 1000


def _interval(s: Interval, t0: int) -> dict[str, Any]:
    return {"kind": s.kind, "step": s.step, "index": s.index, "s": _us(s.start, t0),
            "e": _us(s.end, t0), "sp": s.start_position, "ep": s.end_position,
            "status": s.status, "error": s.error, "recovery": s.recovery, "event": s.event}


def _operation(op: Operation, t0: int) -> dict[str, Any]:
    return {"seq": op.seq, "op": op.op, "label": op.label, "operation": op.operation,
            "container": op.container, "trigger": op.trigger, "from": op.source,
            "to": op.target, "status": op.status, "state": op.state,
            "recovery": op.recovery, "error": op.error, "s": _us(op.start, t0),
            "e": _us(op.end, t0), "sp": op.start_position, "ep": op.end_position,
            "steps": [_interval(s, t0) for s in op.steps]}


def _paths(events: Sequence[Any], life: Lifecycle) -> list[dict[str, Any]]:
    """The sandbox's path and each container's, as SVG plus the Mermaid text."""
    whose = [("sandbox", None, life.sandbox)] + [
        ("container", cid, f"container {cid}")
        for cid in dict.fromkeys(op.container for op in life.operations if op.container)]
    out = []
    for kind, cid, title in whose:
        taken = audit.path_taken(events, kind, cid)
        out.append({"title": title, "svg": state_path_svg(kind, taken),
                    "mermaid": audit.diagram(kind, taken),
                    "text": " -> ".join([taken[0].source, *(t.dest for t in taken)])
                    if taken else "no transition recorded"})
    return out


def sandbox_view(events: Sequence[Any], sandbox_id: str) -> dict[str, Any]:
    """Everything the page shows of one sandbox (its stream's events, oldest first)."""
    life = lifecycle(events, sandbox_id)
    t0 = events[0].recorded_at
    ops = life.operations
    data = {
        "id": sandbox_id, "t0ms": t0 / 1e6,
        "events": {"p": [e.position for e in events], "t": [_us(e.recorded_at, t0)
                                                             for e in events],
                   "type": [e.type for e in events]},
        "ops": [_operation(op, t0) for op in ops],
        "facts": [{"p": f.position, "t": _us(f.time, t0), "kind": f.kind, "type": f.type,
                   "text": f.text} for f in life.facts],
        **positions.changes(events, sandbox_id),
    }
    failures = [(op, s) for op in ops for s in op.steps
                if s.status != "ok" or s.recovery or op.recovery]
    return {
        "id": sandbox_id, "data": data, "paths": _paths(events, life),
        "count": len(events), "first": events[0].position, "last": events[-1].position,
        "start": audit.iso(t0), "end": audit.iso(events[-1].recorded_at),
        "operations": len(ops), "steps": sum(len(op.steps) for op in ops),
        "aborted": sum(op.status == "aborted" for op in ops),
        "open": sum(op.status == "open" for op in ops),
        "recovery": sum(op.recovery for op in ops),
        "failures": [{"op": op.label, "seq": op.seq, "step": s.step,
                      "status": "recovery" if op.recovery and s.status == "ok" else s.status,
                      "error": s.error, "position": s.end_position,
                      "time": audit.iso(s.end)} for op, s in failures],
        "facts": [{"position": f.position, "time": audit.iso(f.time), "kind": f.kind,
                   "text": f.text} for f in life.facts],
    }


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text("utf-8")


def render_report(views: Sequence[dict[str, Any]], verification: Verification, *,
                  log_path: str = "", generated_at: datetime | None = None) -> str:
    """The HTML page for `sandbox_view`s of the sandboxes to show."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: _asset(name)),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    when = generated_at or datetime.now(UTC)
    return env.get_template("report.html.j2").render(
        views=views, verification=verification, log_path=log_path,
        generated=when.isoformat(timespec="seconds"), css=_asset("report.css"),
        script=_asset("report.js"))
