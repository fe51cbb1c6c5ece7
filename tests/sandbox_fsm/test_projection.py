"""`project` is a pure fold: cut anywhere, snapshot, resume, and get the same state.

Streams come from a grammar of saga operations (steps acquiring and releasing
resources, failures with compensations, an operation left open at the end) and from a
real lifecycle recorded once on a real host.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
from hostcheck import make_config, scrub
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_fsm import Runtime
from sandbox_fsm.projection import Projector, project
from sandbox_fsm.spec import ContainerConfig, SandboxConfig
from sandbox_fsm.state import SandboxState

SID = "p1"


@dataclass(frozen=True)
class Ev:
    type: str
    data: dict
    version: int = 0
    position: int = 0


KEYS = [f"mount:/m{i}" for i in range(5)] + ["process:guest", "process:proxy", "dir:/r"]


@st.composite
def operations(draw: st.DrawFn, n: int) -> list[tuple[str, dict]]:
    """One operation's events: started, steps, then completed / aborted / left open."""
    op = f"op{n}"
    container = draw(st.sampled_from([None, "c1", "c2"]))
    name = draw(st.sampled_from(["create", "start", "stop", "delete"]))
    out = [("OperationStarted", {"op": op, "operation": f"{name}_x", "trigger": name,
                                 "container": container, "config": {"n": n}})]
    steps = draw(st.integers(1, 4))
    ending = draw(st.sampled_from(["completed", "failed", "open"]))
    fail_at = draw(st.integers(0, steps - 1)) if ending == "failed" else steps
    for i in range(min(steps, fail_at + 1)):
        out.append(("StepStarted", {"op": op, "step": f"s{i}", "index": i, "args": {"i": i}}))
        if i == fail_at:
            break
        acquired = [{"kind": "mount", "key": k, "path": k}
                    for k in draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True))]
        released = draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True))
        domain = draw(st.sampled_from(["Domain", "ProcessStarted", "ProcessExited"]))
        data = {"op": op, "step": f"s{i}", "index": i, "acquired": acquired,
                "released": released}
        if domain != "Domain":
            data |= {"container": container or "c1", "exec_id": f"e{i}", "status": i}
        out.append((domain, data))
    state = draw(st.sampled_from(["created", "running", "stopped", "deleted"]))
    if ending == "completed":
        out.append(("OperationCompleted", {"op": op, "state": state}))
    elif ending == "failed":
        out.append(("StepFailed", {"op": op, "step": f"s{fail_at}", "index": fail_at,
                                   "error": {"type": "E", "message": "boom"}}))
        out.append(("CompensationStarted", {"op": op}))
        broken = False
        for i in reversed(range(fail_at + 1)):
            if draw(st.booleans()):
                out.append(("StepCompensated", {"op": op, "step": f"s{i}", "index": i}))
            else:
                broken = True
                out.append(("CompensationFailed", {"op": op, "step": f"s{i}", "index": i,
                                                   "error": {"type": "E", "message": "x"}}))
        out.append(("OperationAborted", {"op": op, "state": "failed" if broken else "new"}))
    return out


@st.composite
def streams(draw: st.DrawFn) -> list[Ev]:
    events: list[tuple[str, dict]] = []
    count = draw(st.integers(1, 6))
    for n in range(count):
        ops = draw(operations(n))
        events += ops
        if ops[-1][0] not in ("OperationCompleted", "OperationAborted") and n < count - 1:
            break   # an open operation is always the last one
        if draw(st.booleans()):
            events.append(("ProcessExited", {"container": "c1", "exec_id": "", "status": 3}))
    return [Ev(t, d, version=i, position=100 + i) for i, (t, d) in enumerate(events)]


def through_snapshot(state: SandboxState) -> SandboxState:
    """A snapshot as the store keeps it: to_dict, msgpack bytes, from_dict."""
    raw = msgpack.unpackb(msgpack.packb(state.to_dict()))
    return SandboxState.from_dict(raw)


def normal(state: SandboxState) -> dict:
    """Compare states as their snapshots would hold them (msgpack turns tuples to lists)."""
    return msgpack.unpackb(msgpack.packb(state.to_dict()))


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_fold_from_any_snapshot_equals_one_pass(events: list[Ev], data: st.DataObject) -> None:
    whole = project(events, SID)
    cut = data.draw(st.integers(0, len(events)))
    first = project(events[:cut], SID)
    resumed = Projector(SID, through_snapshot(first)).apply_all(events[cut:])
    assert normal(resumed) == normal(whole)


@settings(max_examples=100, deadline=None)
@given(streams())
def test_fold_is_pure(events: list[Ev]) -> None:
    """Folding never mutates its input, and folding twice gives the same state."""
    kept = copy.deepcopy(events)
    assert normal(project(events, SID)) == normal(project(events, SID))
    assert events == kept


@settings(max_examples=100, deadline=None)
@given(streams())
def test_a_fully_compensated_operation_leaves_the_ledger_as_before(events: list[Ev]) -> None:
    """Rolled-back operations only acquire; undoing every step gives the ledger back."""
    for end, ev in enumerate(events):
        if ev.type != "OperationAborted" or ev.data["state"] == "failed":
            continue
        start = max(i for i in range(end) if events[i].type == "OperationStarted")
        before = project(events[:start], SID)
        touched = [k for e in events[start:end] for k in
                   [*e.data.get("released", ()), *(r["key"] for r in e.data.get("acquired", ()))]]
        if any(e.data.get("released") for e in events[start:end]) or \
                set(touched) & set(before.ledger):
            continue
        after = project(events[:end + 1], SID)
        assert after.ledger == before.ledger and after.operation is None


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list:
    """A real lifecycle's events (process driver), recorded once for this module."""
    root: Path = tmp_path_factory.mktemp("recorded")
    try:
        with Runtime.open(root / "state", root / "run", make_config("process")) as rt:
            rt.create_sandbox(SandboxConfig(id=SID))
            rt.start_sandbox(SID)
            rt.create_container(SID, ContainerConfig(id="c1", args=("sh", "-c", "exit 3")))
            rt.start_container(SID, "c1")
            rt.wait(SID, "c1")
            rt.stop_container(SID, "c1")
            rt.delete_container(SID, "c1")
            rt.stop_sandbox(SID)
            rt.delete_sandbox(SID)
            return rt.events(SID)
    finally:
        assert scrub(root) == ([], [])


@pytest.mark.root
def test_real_stream_ends_deleted_with_an_empty_ledger(recorded: list) -> None:
    state = project(recorded, SID)
    assert state.state == "deleted" and state.ledger == {} and state.operation is None
    assert state.containers["c1"].state == "deleted"
    assert state.containers["c1"].exit_status == 3


@pytest.mark.root
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_real_stream_resumes_from_any_cut(recorded: list, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(recorded)))
    first = project(recorded[:cut], SID)
    resumed = Projector(SID, through_snapshot(first)).apply_all(recorded[cut:])
    assert normal(resumed) == normal(project(recorded, SID))
    held_midway = project(recorded[:cut], SID).ledger
    assert all(r.get("owner") for r in held_midway.values())
