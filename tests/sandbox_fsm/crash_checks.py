"""Checks shared by the crash tests: what the host shows must match what the log says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import crash_child as lifecycle

from sandbox_fsm import Runtime
from sandbox_fsm.host import ProcessIdentity, find_by_cmdline, is_alive, mounts_under
from sandbox_fsm.state import SandboxState

CHILD = Path(lifecycle.__file__)
REPO = Path(__file__).resolve().parents[2]


def check_host_matches(rt: Runtime, run: Path, state: SandboxState) -> None:
    """No mount the ledger does not hold, no process the ledger does not name, and live
    recorded processes only for a running sandbox."""
    held_mounts = [r for r in state.ledger.values() if r["kind"] == "mount"]
    held = {r["path"] for r in held_mounts}
    for r in held_mounts:   # a recursive bind of a host view copies the view's binds
        if r.get("copies"):
            src = r["copies"] + "/"
            held |= {r["path"] + "/" + p[len(src):] for p in set(held) if p.startswith(src)}
    layout = rt.layout(state.id)
    # shared/ is a recursive slave bind of mounts/: mounts/<x> shows up again as shared/<x>.
    mirrored = {str(layout.shared / os.path.relpath(p, layout.mounts)) for p in held
                if p.startswith(str(layout.mounts) + "/")}
    stray = [m.mount_point for m in mounts_under(run)
             if m.mount_point not in held | mirrored]
    assert not stray, f"{state.id} ({state.state}): mounts not in the ledger: {stray}"
    recorded = {ProcessIdentity(r["pid"], r["start_time"]) for r in state.ledger.values()
                if r["kind"] == "process"}
    live = {i for i in find_by_cmdline(str(run)) if not _descends(i.pid, recorded)}
    assert live <= recorded, f"{state.id}: processes not in the ledger: {live - recorded}"
    if state.state != "running":
        alive = [i for i in recorded if is_alive(i)]
        assert not alive, f"{state.id} is {state.state} yet its processes {alive} live"


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _descends(pid: int, recorded: set[ProcessIdentity]) -> bool:
    """A child of a recorded process (the namespaces driver's inner init) is covered by it."""
    pids = {i.pid for i in recorded}
    while (pid := _parent(pid)) > 1:
        if pid in pids:
            return True
    return False


def check_recovered(rt: Runtime, run: Path, sandbox_id: str) -> SandboxState:
    """The sandbox has no open operation, the host matches its ledger, the log verifies,
    and a second recover() appends nothing."""
    state = rt.state(sandbox_id)
    assert state.operation is None, f"{sandbox_id}: still in {state.operation['operation']}"
    check_host_matches(rt, run, state)
    assert rt.store.verify().ok
    before = rt.store.last_position()
    report = rt.recover(step_timeout=5.0)
    assert report.ok, str(report)
    assert rt.store.last_position() == before, f"second recover() wrote events:\n{report}"
    return state


def crash_child(state: Path, run: Path, volume: Path, driver: str, knob: str,
                *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> None:
    """Run crash_child.py (args: sandbox id, ops or `recover`) and expect it SIGKILLed."""
    env = {**os.environ, **(env or {}), "SBX_CRASH_AT": knob,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(CHILD), str(state), str(run), driver,
                           str(volume), *args], env=env, capture_output=True, timeout=timeout)
    assert proc.returncode == -signal.SIGKILL, (
        f"{knob}: child exited {proc.returncode}, not by SIGKILL\n{proc.stderr.decode()}")
