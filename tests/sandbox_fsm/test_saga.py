"""The saga engine alone, on a real event store: append protocol, commits, compensation.

Steps are toy side effects on real files, so the engine is seen without any domain.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventstore import EventStore
from sandbox_fsm.saga import CrashKnob, Operation, Saga, Step, StreamWriter, step_names


def touch(name: str):
    def action(ctx: Path, args: dict) -> dict:
        (ctx / name).write_text("x")
        return {"file": name}
    return action


def remove(name: str):
    def undo(ctx: Path, args: dict, outcome: dict | None) -> None:
        (ctx / name).unlink(missing_ok=True)
    return undo


def boom(ctx: Path, args: dict) -> dict:
    raise RuntimeError("step exploded")


def broken_undo(ctx: Path, args: dict, outcome: dict | None) -> None:
    raise OSError("cannot undo")


@pytest.fixture
def store(tmp_path: Path):
    s = EventStore.open(tmp_path / "events")
    yield s
    s.close()


def run(store: EventStore, work: Path, steps: tuple[Step, ...]):
    writer = StreamWriter(store, "s-1", -1)
    outcome = Saga(writer, CrashKnob(None)).run(
        Operation("op", "go", steps), work, op="o1", header={}, from_state="new",
        to_state="done")
    events = list(store.read_stream("s-1"))
    return outcome, writer.commits, [(e.type, e.data.get("step")) for e in events]


def test_completed_operation_commits_once_per_step_plus_one(store, tmp_path: Path) -> None:
    steps = tuple(Step(f"s{i}", f"Did{i}", touch(f"f{i}"), remove(f"f{i}")) for i in range(3))
    outcome, commits, events = run(store, tmp_path, steps)
    assert outcome.completed and outcome.state == "done"
    assert commits == len(steps) + 1
    assert events == [("OperationStarted", None), ("StepStarted", "s0"), ("Did0", "s0"),
                      ("StepStarted", "s1"), ("Did1", "s1"), ("StepStarted", "s2"),
                      ("Did2", "s2"), ("OperationCompleted", None)]


def test_failure_undoes_in_reverse_and_restores(store, tmp_path: Path) -> None:
    steps = (Step("a", "DidA", touch("a"), remove("a")), Step("b", "DidB", touch("b")),
             Step("c", "DidC", boom, remove("c")))
    outcome, commits, events = run(store, tmp_path, steps)
    assert not outcome.completed and outcome.state == "new" and outcome.failed_step == "c"
    assert str(outcome.error) == "step exploded"
    assert events[-5:] == [("StepFailed", "c"), ("CompensationStarted", None),
                           ("StepCompensated", "c"), ("StepCompensated", "a"),
                           ("OperationAborted", None)]
    assert sorted(os.listdir(tmp_path)) == ["b", "events"]   # b has no undo
    assert not (tmp_path / "a").exists()


def test_a_failing_compensation_leaves_the_operation_failed(store, tmp_path: Path) -> None:
    steps = (Step("a", "DidA", touch("a"), broken_undo), Step("b", "DidB", boom, remove("b")))
    outcome, _, events = run(store, tmp_path, steps)
    assert outcome.state == "failed" and outcome.compensation_errors == [("a", "cannot undo")]
    assert events[-3:] == [("StepCompensated", "b"), ("CompensationFailed", "a"),
                           ("OperationAborted", None)]
    last = list(store.read_stream("s-1"))[-1]
    assert last.data["state"] == "failed"


def test_forward_operation_is_not_undone(store, tmp_path: Path) -> None:
    writer = StreamWriter(store, "s-1", -1)
    operation = Operation("teardown", "stop", (Step("a", "DidA", touch("a"), remove("a")),
                                               Step("b", "DidB", boom)), on_crash="forward")
    outcome = Saga(writer, CrashKnob(None)).run(operation, tmp_path, op="o1", header={},
                                                from_state="running", to_state="stopped")
    assert outcome.state == "failed" and (tmp_path / "a").exists()
    assert [e.type for e in store.read_stream("s-1")][-3:] == [
        "StepFailed", "CompensationStarted", "OperationAborted"]


@pytest.mark.parametrize(
    "spec", ["x", "x:during", "x:before#", "x:before#0", "x:before#n", ":after"])
def test_crash_knob_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="SBX_CRASH_AT"):
        CrashKnob(spec)


def test_step_names_list_compensations_in_running_order() -> None:
    operation = Operation("op", None, (Step("a", "A", boom, broken_undo), Step("b", "B", boom),
                                       Step("c", "C", boom, broken_undo)))
    assert step_names(operation) == ["a", "b", "c", "c.undo", "a.undo"]
