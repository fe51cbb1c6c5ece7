"""An rpc that outlives its deadline is in doubt: the agent never starts a call its caller
gave up on, so the undo that follows is never overtaken by it (issue #11: 2).

Each rpc gets a delay (a fault plan in the real guest agent) longer than its deadline;
after the failure the test waits past the delay and checks the guest as it really is."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent_io.faults import ENV_VAR
from sandbox_fsm import ContainerConfig, OperationFailed, Runtime, SandboxConfig, load_config

DEADLINE, DELAY = 1.0, 2.5


def _proc_state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


def _runtime(dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             rpc: str, nth: int) -> Runtime:
    monkeypatch.setenv(ENV_VAR, json.dumps([{"rpc": rpc, "nth": nth, "action": "delay",
                                             "seconds": DELAY}]))
    conf = tmp_path / "sbx.toml"
    conf.write_text(f'[hypervisor]\ndriver = "process"\n[agent.timeouts]\ndefault = {DEADLINE}\n')
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
    rt = _runtime(dirs, tmp_path, monkeypatch, rpc, late_nth)
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
            assert _proc_state(pid) in "RS"         # not stopped behind the log's back
        else:
            assert rt.state("s").state == "paused" and _proc_state(pid) == "T"
            rt.resume_sandbox("s")                  # and it can be resumed
            assert _proc_state(pid) in "RS"
    finally:
        _teardown(rt)
