"""OpenTelemetry spans of a sandbox, derived from its log alone.

One trace per sandbox stream: a root span for the sandbox, a span per operation under
it, a span per step run and per compensation under the operation. Ids are hashes of what
the log recorded (the stream's first event id, the operation's uuid, the step's index and
position), so exporting the same log twice gives the same ids and a collector
deduplicates; nothing depends on when or where the export runs. Times are the events'
`recorded_at`. Facts outside operations (exits, OOM kills, a lost sandbox) are events of
the root span; outcomes are events of their step's span.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ..intervals import Interval, Lifecycle, Operation, lifecycle
from .names import operation_span, step_span

SCOPE = InstrumentationScope("sandbox_fsm.tracing", "1")
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _id(bits: int, *parts: object) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1      # 0 is "invalid" in OTLP


class SandboxTrace:
    """The spans of one sandbox's stream (`events`, oldest first)."""

    def __init__(self, events: Sequence[Any], sandbox_id: str, resource: Resource) -> None:
        self.events = events
        self.sandbox_id = sandbox_id
        self.resource = resource
        self.trace_id = _id(128, "sbx-trace", events[0].stream, events[0].event_id)
        self.root = self._context("sandbox")
        self.life: Lifecycle = lifecycle(events, sandbox_id)

    def _context(self, *parts: object) -> SpanContext:
        return SpanContext(self.trace_id, _id(64, self.trace_id, *parts), is_remote=False,
                           trace_flags=SAMPLED)

    def _span(self, name: str, context: SpanContext, parent: SpanContext | None,
              start: int, end: int, status: Status, attributes: dict[str, Any],
              events: Sequence[Event] = ()) -> ReadableSpan:
        return ReadableSpan(
            name=name, context=context, parent=parent, resource=self.resource,
            attributes={k: v for k, v in attributes.items() if v is not None},
            events=events, kind=SpanKind.INTERNAL, status=status, start_time=start,
            end_time=end, instrumentation_scope=SCOPE)

    def sandbox_span(self) -> ReadableSpan:
        """The root: the sandbox from its first event to its last, facts as its events."""
        facts = [Event(f.type, {"sbx.position": f.position, "sbx.text": f.text,
                                **{f"sbx.{k}": v for k, v in f.attributes.items()}},
                       timestamp=f.time) for f in self.life.facts]
        lost = any(f.kind == "lost" for f in self.life.facts)
        return self._span(
            f"sandbox {self.sandbox_id}", self.root, None, self.events[0].recorded_at,
            self.events[-1].recorded_at,
            Status(StatusCode.ERROR, "sandbox lost") if lost else Status(StatusCode.UNSET),
            {"sbx.sandbox.id": self.sandbox_id, "sbx.stream": self.events[0].stream,
             "sbx.position.first": self.events[0].position,
             "sbx.position.last": self.events[-1].position}, facts)

    def operation_spans(self, op: Operation) -> list[ReadableSpan]:
        """The operation's span and its steps' and compensations' spans."""
        context = self._context("op", op.op)
        if op.status == "completed":
            status = Status(StatusCode.OK)
        elif op.status == "aborted":
            status = Status(StatusCode.ERROR, op.error or f"aborted, state {op.state}")
        else:
            status = Status(StatusCode.ERROR, "no end in the log: in progress or died")
        spans = [self._span(
            operation_span(op.operation), context, self.root, op.start, op.end, status,
            {"sbx.sandbox.id": self.sandbox_id, "sbx.operation": op.operation,
             "sbx.op": op.op, "sbx.trigger": op.trigger, "sbx.from": op.source,
             "sbx.to": op.target, "sbx.outcome": op.status, "sbx.state": op.state or None,
             "sbx.recovery": op.recovery, "sbx.container.id": op.container,
             "sbx.position.start": op.start_position, "sbx.position.end": op.end_position})]
        spans += [self._step_span(op, s, context) for s in op.steps]
        return spans

    def _step_span(self, op: Operation, s: Interval, parent: SpanContext) -> ReadableSpan:
        if s.status == "ok":
            status = Status(StatusCode.OK)
        elif s.kind == "compensation":
            status = Status(StatusCode.ERROR, f"compensation of {s.step}"
                            + (f": {s.error}" if s.error else f" after: {op.error}"))
        else:
            status = Status(StatusCode.ERROR, s.error)
        outcome = [Event(s.event, {"sbx.position": s.end_position}, timestamp=s.end)] \
            if s.event else []
        name = step_span(s.step) if s.kind == "step" else f"compensate {step_span(s.step)}"
        return self._span(
            name, self._context(op.op, s.kind, s.index, s.start_position), parent, s.start,
            s.end, status,
            {"sbx.sandbox.id": self.sandbox_id, "sbx.step": s.step, "sbx.step.index": s.index,
             "sbx.step.kind": s.kind, "sbx.outcome": s.status, "sbx.recovery": s.recovery,
             "sbx.position.start": s.start_position, "sbx.position.end": s.end_position},
            outcome)

    def spans(self, *, finished_only: bool = False) -> list[ReadableSpan]:
        """Every span; with `finished_only`, operations still open are left out."""
        out = [self.sandbox_span()]
        for op in self.life.operations:
            if not finished_only or op.status != "open":
                out += self.operation_spans(op)
        return out


def sandbox_spans(events: Sequence[Any], sandbox_id: str, resource: Resource) -> list[
        ReadableSpan]:
    """All spans of one sandbox's events (its stream, oldest first)."""
    return SandboxTrace(events, sandbox_id, resource).spans()
