"""Two processes on one sandbox: the loser gets Conflict and the log stays one clean story.

Process A (this test) runs an operation held open by a delayed rpc (a fault plan in the
guest); process B, a real subprocess with its own Runtime on the same LMDB file, tries
an operation on the same sandbox meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from lifekit import CID, SID

from agent_io.faults import ENV_VAR
from eventstore import NewEvent
from sandbox_fsm.errors import Conflict
from sandbox_fsm.projection import project
from sandbox_fsm.repository import stream_of
from sandbox_fsm.saga import StreamWriter
from sandbox_fsm.spec import ContainerConfig, SandboxConfig

pytestmark = pytest.mark.root

CONTENDER = textwrap.dedent("""
    import sys
    from sandbox_fsm import Runtime
    from sandbox_fsm.errors import SandboxError
    from sandbox_fsm.spec import ContainerConfig
    rt = Runtime.open(sys.argv[1], sys.argv[2], sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()    # go: the other process is inside its operation now
    try:
        rt.create_container(sys.argv[4], ContainerConfig(id="other", args=("true",)))
    except SandboxError as exc:
        print(type(exc).__name__, exc)
        sys.exit(exc.exit_code)
    finally:
        rt.close()
""")


def wait_for_step(rt, step: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.type == "StepStarted" and e.data["step"] == step for e in rt.events(SID)):
            return
        time.sleep(0.01)
    raise AssertionError(f"step {step!r} never started in sandbox {SID!r}")


def test_second_process_gets_conflict(open_rt, dirs, tmp_path: Path,  # noqa: F811
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, json.dumps(
        [{"rpc": "CreateContainer", "nth": 1, "action": "delay", "seconds": 1.0}]))
    rt = open_rt("process")
    rt.create_sandbox(SandboxConfig(id=SID))
    rt.start_sandbox(SID)
    errors: list[BaseException] = []

    def operate() -> None:
        try:
            rt.create_container(SID, ContainerConfig(id=CID, args=("true",)))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    config = tmp_path / "process.toml"
    config.write_text('[hypervisor]\ndriver = "process"\n')
    b = subprocess.Popen(
        [sys.executable, "-c", CONTENDER, str(dirs[0]), str(dirs[1]), str(config), SID],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    a = threading.Thread(target=operate)
    try:
        assert b.stdout.readline() == "ready\n", b.stderr.read()
        a.start()
        wait_for_step(rt, "create_container_in_guest")
        out, err = b.communicate("go\n", timeout=60)
    finally:
        b.kill()
        b.wait()
        if a.ident is not None:
            a.join(timeout=30)
    assert not errors
    assert b.returncode == Conflict.exit_code, out + err
    assert out.startswith("Conflict") and SID in out and "create_container" in out

    events = rt.events(SID)
    state = project(events, SID)
    assert state.operation is None and state.containers[CID].state == "created"
    assert "other" not in state.containers
    opened = [e.data["op"] for e in events if e.type == "OperationStarted"]
    closed = [e.data["op"] for e in events if e.type == "OperationCompleted"]
    assert opened == closed and len(opened) == 3
    # operations never interleave: each one's events are contiguous
    ops = [e.data.get("op") for e in events]
    assert all(ops[i] == ops[i + 1] or events[i].type == "OperationCompleted"
               for i in range(len(ops) - 1))
    assert rt.store.verify().ok
    rt.delete_sandbox(SID, force=True)


def test_stale_writer_gets_conflict_and_appends_nothing(runtime) -> None:
    """The cross-process guard itself: an append at a version another writer moved on."""
    runtime.create_sandbox(SandboxConfig(id=SID))
    stale = runtime.state(SID).version - 1
    before = runtime.store.last_position()
    writer = StreamWriter(runtime.store, stream_of(SID), stale)
    with pytest.raises(Conflict, match=f"sandbox-{SID}.*expected version {stale}"):
        writer.append([NewEvent("OperationStarted", {"op": "x"})])
    assert runtime.store.last_position() == before and writer.commits == 0
    runtime.delete_sandbox(SID)
