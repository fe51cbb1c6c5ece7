"""Guest calls that fail in ways that do not say what happened, through a fault plan in
the real guest agent; afterwards the test checks the guest as it really is.

- An rpc that outlives its deadline is in doubt: the agent never starts a call its caller
  gave up on, so the undo that follows is never overtaken by it (issue #11: 2).
- UNAVAILABLE on RemoveContainer is not "gone": retried, or the step fails (#11: 11)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hostcheck import freezer_state

from agent_io.faults import ENV_VAR
from sandbox_fsm import ContainerConfig, OperationFailed, Runtime, SandboxConfig, load_config

DEADLINE, DELAY = 2.0, 4.0


def _runtime(dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             rules: list[dict]) -> Runtime:
    monkeypatch.setenv(ENV_VAR, json.dumps(rules))
    conf = tmp_path / "sbx.toml"
    # StartContainer waits for the container's init to run: not a call under test here
    conf.write_text(f'[hypervisor]\ndriver = "process"\n[agent.timeouts]\ndefault = {DEADLINE}\n'
                    'StartContainer = 60.0\n')
    rt = Runtime.open(dirs[0], dirs[1], load_config(conf))
    rt.create_sandbox(SandboxConfig("s"))
    rt.start_sandbox("s")
    return rt


def _sleeper(rt: Runtime, cid: str = "c") -> int:
    rt.create_container("s", ContainerConfig(cid, args=("sleep", "300")))
    rt.start_container("s", cid)
    return int(json.loads(rt.list_processes("s", cid, "json"))[0])


def _teardown(rt: Runtime) -> None:
    rt.delete_sandbox("s", force=True)
    rt.close()


@pytest.mark.parametrize("rpc", ["CreateContainer", "ExecProcess", "PauseContainer",
                                 "ResumeContainer"])
def test_a_late_call_never_lands_after_its_undo(rpc: str, dirs, tmp_path, monkeypatch) -> None:
    late_nth = 2 if rpc == "CreateContainer" else 1
    rt = _runtime(dirs, tmp_path, monkeypatch,
                  [{"rpc": rpc, "nth": late_nth, "action": "delay", "seconds": DELAY}])
    try:
        pid = _sleeper(rt, "first")
        with pytest.raises(OperationFailed, match="DEADLINE|no answer within"):
            if rpc == "CreateContainer":
                rt.create_container("s", ContainerConfig("c", args=("sleep", "300")))
            elif rpc == "ExecProcess":
                rt.exec("s", "first", ["sleep", "77"])
            elif rpc == "PauseContainer":
                rt.pause_container("s", "first")
            else:
                rt.pause_sandbox("s")
                rt.resume_sandbox("s")
        time.sleep(DELAY + 0.5)                     # the late call would have landed by now
        if rpc == "CreateContainer":
            _sleeper(rt, "c")                       # the id is free: no ALREADY_EXISTS
        elif rpc == "ExecProcess":
            assert b"sleep 77" not in rt.list_processes("s", "first")
        elif rpc == "PauseContainer":
            assert rt.state("s").containers["first"].state == "running"
            assert freezer_state(pid) == "THAWED"   # not frozen behind the log's back
        else:
            assert rt.state("s").state == "paused" and freezer_state(pid) == "FROZEN"
            rt.resume_sandbox("s")                  # and it can be resumed
            assert freezer_state(pid) == "THAWED"
    finally:
        _teardown(rt)


def test_a_transient_unavailable_on_remove_is_retried(dirs, tmp_path, monkeypatch) -> None:
    rt = _runtime(dirs, tmp_path, monkeypatch, [
        {"rpc": "RemoveContainer", "nth": 1, "action": "error", "code": "UNAVAILABLE"}])
    try:
        _sleeper(rt, "c")
        rt.stop_container("s", "c")
        rt.delete_container("s", "c")
        _sleeper(rt, "c")                          # removed in the guest: the id is free
    finally:
        _teardown(rt)


def test_a_lasting_unavailable_on_remove_fails_the_stop(dirs, tmp_path, monkeypatch) -> None:
    rt = _runtime(dirs, tmp_path, monkeypatch, [
        {"rpc": "RemoveContainer", "nth": n, "action": "error", "code": "UNAVAILABLE"}
        for n in range(1, 5)])
    try:
        _sleeper(rt, "c")
        with pytest.raises(OperationFailed, match="remove_container_in_guest.*UNAVAILABLE|"
                                                  "remove_container_in_guest.*unreachable"):
            rt.stop_container("s", "c")
        assert rt.state("s").containers["c"].state != "stopped"
    finally:
        _teardown(rt)
