"""Recovery kills only what its own crashed runtime started: not the guest of a sandbox
in another runtime dir whose path contains ours (issue #11: 12)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hostcheck import busybox_tree, scrub

from sandbox_fsm.host import find_by_cmdline, is_alive

SBX = str(Path(sys.executable).parent / "sbx")


def _sbx(state: Path, run: Path, *args: str, crash: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_AGENT_FAULTS", "SBX_CRASH_AT")}
    env.update(SBX_STATE_DIR=str(state), SBX_RUNTIME_DIR=str(run))
    if crash:
        env["SBX_CRASH_AT"] = crash
    # output through files: `create` hands its stdio to the process's shim, which outlives it
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run([SBX, *args], env=env, stdout=out, stderr=err, text=True,
                              timeout=120)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


@pytest.fixture
def short_dir():
    """Socket paths must stay under 108 bytes, and one runtime dir nests another's path."""
    base = Path(tempfile.mkdtemp(prefix="i11r-", dir="/tmp"))
    try:
        yield base
    finally:
        mounts, pids = scrub(base)
        shutil.rmtree(base, ignore_errors=True)
        assert not mounts and not pids, (mounts, pids)


def test_recovery_leaves_a_guest_whose_socket_path_contains_ours(short_dir: Path) -> None:
    ours_run = short_dir / "a" / "r"
    theirs_run = short_dir / "a" / "x" / str(ours_run).lstrip("/")
    bundle = short_dir / "bundle"
    busybox_tree(bundle / "rootfs")
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["sleep", "300"], "cwd": "/", "env": ["PATH=/usr/bin:/bin"]}}))
    theirs = (short_dir / "st", theirs_run)
    ours = (short_dir / "so", ours_run)
    assert _sbx(*theirs, "create", "s1", "--bundle", str(bundle)).returncode == 0
    theirs_procs = find_by_cmdline(str(theirs_run))      # their guest and shim
    assert len(theirs_procs) >= 2
    crashed = _sbx(*ours, "run", "--id", "s1", "--", "true", crash="start_vm:after")
    assert crashed.returncode == -9, crashed.stderr
    recovered = _sbx(*ours, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert all(is_alive(p) for p in theirs_procs), "recovery killed another runtime's guest"
    assert json.loads(_sbx(*theirs, "state", "s1").stdout)["status"] == "created"
    assert _sbx(*theirs, "delete", "--force", "s1").returncode == 0
    assert _sbx(*ours, "delete", "--force", "s1").returncode == 0   # the run's, rolled back
