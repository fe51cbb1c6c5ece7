"""The saga engine: runs an operation's steps with their intents and outcomes in the log.

It knows no mounts and no rpcs. An operation is an ordered list of steps; each step has
an action returning its outcome, an optional compensation, and the domain event type its
outcome is recorded as. The protocol it appends (see docs/events.md)::

    OperationStarted + StepStarted(0)        one append
    <Domain>(0)       + StepStarted(1)       one append per side effect
    <Domain>(n-1)     + OperationCompleted   one append
  or, on failure:
    StepFailed + CompensationStarted, StepCompensated | CompensationFailed per step in
    reverse (the last one together with OperationAborted)

The same loops serve recovery: `resume` finishes an operation a dead process left open,
from what the log recorded of it (`records_of`): a rollback resumes at the first step not
yet compensated, a teardown rolls forward from its in-doubt step. `StepRecord` is what
both the running saga and the fold (projection.py) keep per step.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from eventstore import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion

from .errors import Conflict
from .names import Ev, State

Action = Callable[[Any, dict], dict | None]
Undo = Callable[[Any, dict, dict | None], None]
Plan = Callable[[Any], dict]

CRASH_ENV = "SBX_CRASH_AT"


@dataclass(frozen=True)
class Step:
    """One side effect: `action(ctx, args) -> outcome`, undone by `undo(ctx, args, outcome)`.

    `plan(ctx) -> args` computes the arguments recorded in the intent, so that a crash
    between intent and outcome leaves enough in the log to undo or redo the step.
    """

    name: str
    event: str
    action: Action
    undo: Undo | None = None
    plan: Plan | None = None


@dataclass(frozen=True)
class Operation:
    """A named, ordered list of steps; `on_crash` says how recovery finishes it."""

    name: str
    trigger: str | None
    steps: Sequence[Step]
    on_crash: Literal["rollback", "forward"] = "rollback"


@dataclass
class StepRecord:
    """What the log says about one step of one operation: its intent (`args`), its
    outcome (the domain event's data without `op`, `step`, `index`), what became of it."""

    index: int
    step: str
    args: dict
    outcome: dict | None = None
    failed: bool = False
    compensated: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        """A record kept in a snapshot (older snapshots kept the outcome's whole data)."""
        return cls(data["index"], data["step"], data.get("args") or {},
                   outcome_of(data["outcome"]) if data.get("outcome") is not None else None,
                   bool(data.get("failed")), bool(data.get("compensated")))


STEP_FIELDS = frozenset({"op", "step", "index"})


def outcome_of(data: Mapping[str, Any]) -> dict:
    """A step's outcome as its action returned it: the domain event's data without the
    fields the saga adds."""
    return {k: v for k, v in data.items() if k not in STEP_FIELDS}


def records_of(open_op: Mapping[str, Any]) -> list[StepRecord]:
    """The step records of an open operation as the fold keeps it, in step order."""
    return sorted(open_op["records"].values(), key=lambda r: r.index)


class _Op(NamedTuple):
    """The identity and the two ends of one running operation."""

    op: str
    from_state: str
    to_state: str


@dataclass
class Outcome:
    """The result of running an operation."""

    op: str
    completed: bool
    state: str
    failed_step: str | None = None
    error: BaseException | None = None
    records: list[StepRecord] = field(default_factory=list)
    compensation_errors: list[tuple[str, str]] = field(default_factory=list)


def error_data(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "message": str(exc)}


IN_DOUBT = "in_doubt"
"""Set in the args of a step re-run after a crash (its intent had no outcome): a step may
then skip what could have been the cause (a guest call that hung)."""


class CrashKnob:
    """`SBX_CRASH_AT="<step>:<before|after>[#N]"`: SIGKILL ourselves at that point.

    `before` fires with the step's intent durable and its side effect not done; `after`
    fires with the side effect done and its outcome not yet durable.
    """

    def __init__(self, spec: str | None) -> None:
        self.step = self.when = None
        self.nth = 1
        self.seen = 0
        if spec:
            where, mark, nth = spec.partition("#")
            step, _, when = where.partition(":")
            bad_nth = mark and not (nth.isdigit() and int(nth) >= 1)
            if not step or when not in ("before", "after") or bad_nth:
                raise ValueError(
                    f"{CRASH_ENV}={spec!r}: expected '<step>:<before|after>[#N]'")
            self.step, self.when, self.nth = step, when, int(nth or 1)

    @classmethod
    def from_env(cls) -> CrashKnob:
        return cls(os.environ.get(CRASH_ENV))

    def point(self, step: str, when: str) -> None:
        if step == self.step and when == self.when:
            self.seen += 1
            if self.seen == self.nth:
                os.kill(os.getpid(), signal.SIGKILL)


class StreamWriter:
    """Appends to one stream with the exact expected version: interleaving is a Conflict."""

    def __init__(self, store: EventStore, stream: str, version: int) -> None:
        self.store = store
        self.stream = stream
        self.version = version
        self.commits = 0

    def append(self, events: list[NewEvent]) -> None:
        try:
            expected = NO_STREAM if self.version < 0 else self.version
            result = self.store.append(self.stream, events, expected_version=expected)
        except WrongExpectedVersion as exc:
            raise Conflict(
                f"{self.stream}: another process wrote to this sandbox concurrently "
                f"(expected version {self.version}, found {exc.actual}); nothing was appended"
            ) from exc
        self.version = result.version
        self.commits += 1


class Saga:
    """Runs operations against one stream; the caller supplies the domain context."""

    def __init__(self, writer: StreamWriter, knob: CrashKnob) -> None:
        self.writer = writer
        self.knob = knob

    def run(self, operation: Operation, ctx: Any, *, op: str, header: dict,
            from_state: str, to_state: str, records: list[StepRecord] | None = None) -> Outcome:
        """Run every step; on failure compensate in reverse and abort.

        `records` (filled as steps run) lets later steps' plans see earlier outcomes.
        """
        started = NewEvent(Ev.OPERATION_STARTED, {
            "op": op, "operation": operation.name, "trigger": operation.trigger,
            "from": from_state, "to": to_state,
            "steps": [s.name for s in operation.steps], **header})
        return self._run_from(operation, ctx, _Op(op, from_state, to_state), 0,
                              records if records is not None else [], [started])

    def resume(self, operation: Operation, ctx: Any, open_op: Mapping[str, Any],
               records: list[StepRecord]) -> Outcome:
        """Finish `open_op` (the fold's open operation, `records` its `records_of`), which
        a dead process left: a teardown (`on_crash="forward"`) runs its remaining steps,
        the in-doubt one again with its recorded intent; any other operation is
        compensated, resuming at the first step not yet compensated."""
        run = _Op(open_op["op"], open_op["from"], open_op["to"])
        if operation.on_crash == "forward":
            doubt = next((r for r in records if r.outcome is None), None)
            if doubt is None:
                return self._run_from(operation, ctx, run, len(records), records, [])
            records.remove(doubt)
            return self._run_from(operation, ctx, run, doubt.index, records, [],
                                  redo_args=doubt.args)
        if not open_op["compensating"]:
            self.writer.append([NewEvent(Ev.COMPENSATION_STARTED, {"op": run.op})])
        errors = self.compensate(operation, ctx, op=run.op, records=records,
                                 from_state=run.from_state)
        return Outcome(run.op, False, State.FAILED if errors else run.from_state,
                       records=records, compensation_errors=errors)

    def _run_from(self, operation: Operation, ctx: Any, run: _Op, index: int,
                  records: list[StepRecord], pending: list[NewEvent],
                  redo_args: dict | None = None) -> Outcome:
        """Run steps from `index` on; `redo_args` re-runs an in-doubt step with its intent."""
        op = run.op
        for i in range(index, len(operation.steps)):
            step = operation.steps[i]
            if i == index and redo_args is not None:
                args = {**redo_args, IN_DOUBT: True}
            else:
                args = step.plan(ctx) if step.plan else {}
                pending.append(NewEvent(Ev.STEP_STARTED, {
                    "op": op, "step": step.name, "index": i, "args": args}))
            if pending:
                self.writer.append(pending)
            pending = []
            record = StepRecord(i, step.name, args)
            records.append(record)
            self.knob.point(step.name, "before")
            try:
                outcome = step.action(ctx, args) or {}
            except Exception as exc:  # any failure of a step is recorded, then undone
                record.failed = True
                return self._abort(operation, ctx, op, records, exc, run.from_state)
            self.knob.point(step.name, "after")
            record.outcome = outcome
            pending.append(NewEvent(step.event, {
                "op": op, "step": step.name, "index": i, **outcome}))
        pending.append(NewEvent(Ev.OPERATION_COMPLETED, {"op": op, "state": run.to_state}))
        self.writer.append(pending)
        return Outcome(op, True, run.to_state, records=records)

    def _abort(self, operation: Operation, ctx: Any, op: str, records: list[StepRecord],
               exc: BaseException, from_state: str) -> Outcome:
        failed = records[-1]
        self.writer.append([
            NewEvent(Ev.STEP_FAILED, {"op": op, "step": failed.step, "index": failed.index,
                                    "error": error_data(exc)}),
            NewEvent(Ev.COMPENSATION_STARTED, {"op": op}),
        ])
        if operation.on_crash == "forward":
            # A teardown is not undone; if it got past its first step the sandbox is
            # left `failed` with its ledger saying what is still held.
            state = from_state if failed.index == 0 else State.FAILED
            self.writer.append([NewEvent(Ev.OPERATION_ABORTED, {"op": op, "state": state})])
            return Outcome(op, False, state, failed.step, exc, records)
        errors = self.compensate(operation, ctx, op=op, records=records, from_state=from_state)
        state = State.FAILED if errors else from_state
        return Outcome(op, False, state, failed.step, exc, records, errors)

    def compensate(self, operation: Operation, ctx: Any, *, op: str,
                   records: list[StepRecord], from_state: str) -> list[tuple[str, str]]:
        """Undo every recorded, not yet compensated step in reverse; then abort.

        Each undo is idempotent and treats "already gone" as success, so a step whose
        compensation ran but was not recorded before a crash is simply undone again.
        """
        steps = {s.name: s for s in operation.steps}
        errors: list[tuple[str, str]] = []
        pending: list[NewEvent] = []
        for record in sorted(records, key=lambda r: r.index, reverse=True):
            step = steps[record.step]
            if record.compensated or step.undo is None:
                continue
            if pending:
                self.writer.append(pending)
                pending = []
            name = f"{step.name}.undo"
            self.knob.point(name, "before")
            try:
                step.undo(ctx, record.args, record.outcome)
            except Exception as exc:  # recorded; the sandbox ends `failed`
                errors.append((step.name, str(exc)))
                pending.append(NewEvent(Ev.COMPENSATION_FAILED, {
                    "op": op, "step": step.name, "index": record.index,
                    "error": error_data(exc)}))
                continue
            self.knob.point(name, "after")
            record.compensated = True
            pending.append(NewEvent(Ev.STEP_COMPENSATED, {
                "op": op, "step": step.name, "index": record.index}))
        state = State.FAILED if errors else from_state
        pending.append(NewEvent(Ev.OPERATION_ABORTED, {"op": op, "state": state}))
        self.writer.append(pending)
        return errors


def step_names(operation: Operation) -> list[str]:
    """The operation's steps followed by its compensations in the order they would run."""
    names = [s.name for s in operation.steps]
    return names + [f"{s.name}.undo" for s in reversed(operation.steps) if s.undo]
