"""The layers under the Runtime facade, each on its own: the lifecycle machine, the one
timeout table, step records through a snapshot, and the deprecated `Runtime.list`."""

from __future__ import annotations

import dataclasses

import pytest

from eventstore import RecordedEvent
from sandbox_fsm import Runtime, RuntimeConfig
from sandbox_fsm.agents import timeout_table
from sandbox_fsm.config import AgentTimeouts
from sandbox_fsm.errors import IllegalTransition
from sandbox_fsm.machines import CONTAINER, SANDBOX, STATES
from sandbox_fsm.names import State
from sandbox_fsm.projection import project
from sandbox_fsm.saga import StepRecord
from sandbox_fsm.state import SandboxState


def test_the_machine_holds_every_state_and_the_runtime_s_own_edges():
    assert STATES == [s.value for s in State]
    assert SANDBOX.may_fire(State.RUNNING, "lost") and SANDBOX.may_fire("failed", "lost")
    assert SANDBOX.may_fire("created", "fail") and not SANDBOX.may_fire("deleted", "start")
    assert CONTAINER.target("running", "pause", what="c") == "paused"
    with pytest.raises(IllegalTransition) as caught:
        SANDBOX.target("running", "start", what="sandbox 's'")
    assert str(caught.value) == "cannot start sandbox 's': it is running (allowed: pause, stop)"


def test_one_timeout_table_none_is_no_deadline_and_recovery_caps_it():
    config = RuntimeConfig.default().agent
    table = timeout_table(config)
    assert table == {"default": 60.0, "Check": 30.0, "Version": 30.0, "WaitProcess": None,
                     "GetOOMEvent": None, "ReadStdout": None, "ReadStderr": None}
    assert set(timeout_table(config, cap=5.0).values()) == {5.0}
    custom = dataclasses.replace(config, timeouts=AgentTimeouts(check=0.0, default=10.0))
    assert timeout_table(custom)["Version"] is None and timeout_table(custom)["default"] == 10


def _event(version: int, type_: str, data: dict) -> RecordedEvent:
    return RecordedEvent(version, "sandbox-s", version, type_, data, {}, "id", 1, 1, "h")


def test_step_records_survive_a_snapshot_as_step_records():
    state = project([
        _event(0, "OperationStarted", {"op": "o", "operation": "create_sandbox", "from": "new",
                                       "to": "created", "steps": ["a", "b"]}),
        _event(1, "StepStarted", {"op": "o", "step": "a", "index": 0, "args": {"x": 1}}),
        _event(2, "SharedPathCreated", {"op": "o", "step": "a", "index": 0, "acquired": []}),
        _event(3, "StepStarted", {"op": "o", "step": "b", "index": 1, "args": {}}),
    ], "s")
    assert state.operation is not None
    records = state.operation["records"]
    assert records["0"] == StepRecord(0, "a", {"x": 1}, {"acquired": []})
    assert records["1"] == StepRecord(1, "b", {})
    again = SandboxState.from_dict(state.to_dict())
    assert again.operation == state.operation
    old = state.to_dict()   # a snapshot written before: the outcome kept the saga's fields
    old["operation"]["records"]["0"]["outcome"] = {"op": "o", "step": "a", "index": 0,
                                                   "acquired": []}
    assert SandboxState.from_dict(old).operation == state.operation


def test_list_is_a_deprecated_alias_of_list_sandboxes(tmp_path):
    with Runtime.open(tmp_path / "state", tmp_path / "run") as rt:
        with pytest.warns(DeprecationWarning, match="list_sandboxes"):
            assert rt.list() == rt.list_sandboxes() == []
