"""A failed sandbox is torn down before it is deleted, a sandbox is never `deleted` while
its ledger holds anything, and recovery releases what an older delete left held (issue
#11: 1). Real guest agent, faults from a fault plan, real processes and mounts."""

from __future__ import annotations

import json
import uuid

import pytest
from hostcheck import make_config, scrub

from agent_io.faults import ENV_VAR
from eventstore import NewEvent
from sandbox_fsm import ContainerConfig, OperationFailed, Runtime, SandboxConfig
from sandbox_fsm.host import identity_of, is_alive, mounts_under

PAUSE_FAILS_UNDO_FAILS = [
    {"rpc": "PauseContainer", "nth": 1, "action": "error", "code": "INTERNAL"},
    {"rpc": "ResumeContainer", "nth": 1, "action": "error", "code": "INTERNAL"}]


def _failed_sandbox(rt: Runtime) -> int:
    """A running sandbox whose pause failed and whose compensation failed too."""
    rt.create_sandbox(SandboxConfig("s"))
    rt.start_sandbox("s")
    rt.create_container("s", ContainerConfig("c", args=("sleep", "300")))
    rt.start_container("s", "c")
    with pytest.raises(OperationFailed):
        rt.pause_sandbox("s")
    state = rt.state("s")
    assert state.state == "failed" and state.guest is not None
    return int(state.guest["pid"])


def _guest_gone(pid: int, start: int) -> bool:
    ident = identity_of(pid)
    return ident is None or ident.start_time != start or not is_alive(ident)


@pytest.mark.parametrize("force", [True, False])
def test_deleting_a_failed_sandbox_tears_it_down(dirs, monkeypatch, force: bool) -> None:
    monkeypatch.setenv(ENV_VAR, json.dumps(PAUSE_FAILS_UNDO_FAILS))
    with Runtime.open(dirs[0], dirs[1], make_config("process")) as rt:
        pid = _failed_sandbox(rt)
        start = rt.state("s").guest["start_time"]
        rt.stop_container("s", "c")
        rt.delete_container("s", "c")
        rt.delete_sandbox("s", force=force)
        state = rt.state("s")
        assert state.state == "deleted" and state.ledger == {}
        assert _guest_gone(pid, start)
        assert mounts_under(dirs[1]) == []


def _forge_legacy_delete(rt: Runtime) -> None:
    """What the old runtime appended for delete_sandbox of a failed sandbox: DELETE's three
    steps ran (their outcomes released nothing of the guest) and no teardown happened."""
    state = rt.state("s")
    op = uuid.uuid4().hex
    steps = ["unmount_container_mounts", "unmount_shared_dir", "remove_sandbox_dir"]
    outcomes = ["ContainerMountsUnmounted", "SharedDirUnmounted", "SandboxDirRemoved"]
    events = [NewEvent("OperationStarted", {
        "op": op, "operation": "delete_sandbox", "trigger": "delete", "from": "failed",
        "to": "deleted", "steps": steps, "kind": "sandbox", "container": None,
        "params": {}, "owner": {"pid": 1, "start_time": 1}})]
    for i, (step, outcome) in enumerate(zip(steps, outcomes, strict=True)):
        events += [NewEvent("StepStarted", {"op": op, "step": step, "index": i, "args": {}}),
                   NewEvent(outcome, {"op": op, "step": step, "index": i, "released": []})]
    events.append(NewEvent("OperationCompleted", {"op": op, "state": "deleted"}))
    rt.store.append("sandbox-s", events, expected_version=state.version)


def test_recovery_releases_what_a_deleted_sandbox_still_holds(dirs, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, json.dumps(PAUSE_FAILS_UNDO_FAILS))
    with Runtime.open(dirs[0], dirs[1], make_config("process")) as rt:
        pid = _failed_sandbox(rt)
        start = rt.state("s").guest["start_time"]
        _forge_legacy_delete(rt)
        assert rt.state("s").state == "deleted" and "process:guest" in rt.state("s").ledger
    with Runtime.open(dirs[0], dirs[1], make_config("process")) as rt:   # recovers
        state = rt.state("s")
        assert state.state == "deleted" and state.ledger == {}, state.held()
        assert _guest_gone(pid, start)
        assert rt.last_recovery is not None and rt.last_recovery.ok
    assert scrub(dirs[1]) == ([], [])
