"""Recovery against real guests, mounts and processes: a crash during recovery itself,
guests and containers that die behind the runtime's back, recycled pids, a hung guest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import crash_child as lifecycle
import pytest
from crash_checks import check_recovered, crash_child
from hostcheck import leftovers, make_config

from sandbox_fsm import Runtime
from sandbox_fsm.host import (
    ProcessIdentity,
    bind_mount,
    identity_of,
    is_alive,
    is_mounted,
    unmount,
)
from sandbox_fsm.recovery import LOST_EXIT_STATUS

SBX, CID = lifecycle.SANDBOX, lifecycle.CONTAINER
UP = ("create_sandbox", "start_sandbox", "create_container", "start_container")


def volume_of(dirs: tuple[Path, Path]) -> Path:
    volume = dirs[0].parent / "volume"
    volume.mkdir(exist_ok=True)
    return volume


def finish(rt: Runtime, run: Path, sandbox: str = SBX) -> None:
    """Take the sandbox to deleted from wherever it is; nothing may be left on the host."""
    state = rt.state(sandbox)
    for cid, c in state.containers.items():
        if c.state in ("running", "paused", "failed"):
            rt.stop_container(sandbox, cid)
        if rt.state(sandbox).containers[cid].state in ("created", "stopped"):
            rt.delete_container(sandbox, cid)
    rt.delete_sandbox(sandbox, force=True)
    final = rt.state(sandbox)
    assert final.state == "deleted" and not final.ledger, (final.state, final.held())


@pytest.mark.parametrize("knob", ["start_vm.undo:before", "start_vm.undo:after",
                                  "start_proxy.undo:after"])
def test_crash_during_recovery_resumes(dirs: tuple[Path, Path], knob: str) -> None:
    state_dir, run = dirs
    volume = volume_of(dirs)
    crash_child(state_dir, run, volume, "process", "check_agent:after", SBX,
                "create_sandbox,start_sandbox")
    crash_child(state_dir, run, volume, "process", knob, SBX, "recover")
    with Runtime.open(state_dir, run, make_config("process")) as rt:
        state = check_recovered(rt, run, SBX)
        assert state.state == "created"
        types = [e.type for e in rt.events(SBX)]
        assert types.count("CompensationStarted") == 1, types
        lifecycle.run(rt, str(volume), lifecycle.LIFECYCLE[1:])
    assert leftovers(run) == ([], [])


def up(dirs: tuple[Path, Path], proxy: str = "builtin") -> Runtime:
    state_dir, run = dirs
    rt = Runtime.open(state_dir, run, make_config("process", type=proxy))
    lifecycle.run(rt, str(volume_of(dirs)), UP)
    return rt


def kill(pid: int, *, reaped: bool) -> None:
    """SIGKILL from outside and wait until the host shows it dead (a zombie of ours), or
    gone altogether once its parent (the guest) has reaped it: a signal is asynchronous,
    and recovery must be judged on what it finds, not on a race with the kernel."""
    ident = identity_of(pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while ident is not None and (identity_of(pid) == ident if reaped else is_alive(ident)):
        assert time.monotonic() < deadline, f"pid {pid} survived SIGKILL"
        time.sleep(0.01)


def test_guest_killed_from_outside_is_lost(dirs: tuple[Path, Path]) -> None:
    rt = up(dirs, proxy="process")
    try:
        before = rt.state(SBX)
        proxy = before.proxy
        assert proxy is not None
        kill(before.guest["pid"], reaped=False)
        report = rt.recover(step_timeout=5.0)
        assert report.ok, str(report)
        state = check_recovered(rt, dirs[1], SBX)
        assert state.lost and state.state == "stopped"
        assert state.containers[CID].exit_status == LOST_EXIT_STATUS
        assert [r["kind"] for r in state.ledger.values()] == ["dir"], state.held()
        assert not is_alive(ProcessIdentity(proxy["pid"], proxy["start_time"]))
        exited = [e for e in rt.events(SBX) if e.type == "ProcessExited"]
        assert [(e.data["container"], e.data["status"]) for e in exited] == \
            [(CID, LOST_EXIT_STATUS)]
        finish(rt, dirs[1])
    finally:
        rt.close()


def _children(pid: int) -> list[int]:
    out = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                    out.append(int(name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def _container_pid(guest: int) -> int:
    """The guest's `sleep 60` (the container's command, which the container's init starts
    a moment after StartContainer answered), found by walking its children."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        todo = _children(guest)
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0] == b"sleep":
                        return pid
            except (FileNotFoundError, ProcessLookupError):
                continue
            todo += _children(pid)
        time.sleep(0.02)
    raise AssertionError(f"no container process under guest pid {guest}")


def test_container_killed_exit_is_recorded(dirs: tuple[Path, Path]) -> None:
    rt = up(dirs)
    try:
        kill(_container_pid(rt.state(SBX).guest["pid"]), reaped=True)
        report = rt.recover(step_timeout=5.0)
        assert report.ok, str(report)
        state = check_recovered(rt, dirs[1], SBX)
        assert not state.lost and state.state == "running"
        assert state.containers[CID].exit_status not in (None, LOST_EXIT_STATUS)
        finish(rt, dirs[1])
    finally:
        rt.close()


def test_recycled_pid_is_never_signalled(dirs: tuple[Path, Path]) -> None:
    """The ledger names a pid now held by another process (start time differs): the guest
    is gone, the sandbox is lost, and that other process is left alone."""
    from eventstore import NewEvent

    rt = up(dirs)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        guest = rt.state(SBX).guest
        kill(guest["pid"], reaped=False)
        other = identity_of(bystander.pid)
        recycled = {**guest, "pid": other.pid, "start_time": other.start_time + 1}
        version = rt.state(SBX).version
        rt.store.append(f"sandbox-{SBX}", [NewEvent("ResourcesReleased", {
            "acquired": [recycled], "reason": "test: the guest's pid was recycled"})],
            expected_version=version)
        report = rt.recover(step_timeout=5.0)
        assert report.ok, str(report)
        state = check_recovered(rt, dirs[1], SBX)
        assert state.lost and "process:guest" not in state.ledger
        time.sleep(0.1)
        assert bystander.poll() is None, "recovery signalled a process that is not ours"
        finish(rt, dirs[1])
    finally:
        bystander.kill()
        bystander.wait()
        rt.close()


@pytest.mark.parametrize(("step_timeout", "sandbox_timeout"), [(1.0, None), (3.0, 0.5)],
                         ids=["rpc-deadline", "sandbox-limit"])
def test_hung_guest_is_reported_and_others_recover(
        dirs: tuple[Path, Path], step_timeout: float, sandbox_timeout: float | None) -> None:
    """RemoveContainer hangs in one guest while recovery rolls back its start_container: the
    bounded rpc deadline (or, when that is longer, the sandbox's time limit) ends its
    recovery, which is reported; the other recovers. (A hung call in a teardown is not
    retried by recovery at all: see tests/cli/test_cli_teardown.py.)"""
    state_dir, run = dirs
    volume = volume_of(dirs)
    crash_child(state_dir, run, volume, "process", "start_container_in_guest:before",
                "healthy", ",".join(UP))
    hang = json.dumps([{"rpc": "RemoveContainer", "nth": 1, "action": "hang"}])
    crash_child(state_dir, run, volume, "process", "start_container_in_guest:before",
                "wedged", ",".join(UP), env={"SBX_AGENT_FAULTS": hang})
    with Runtime.open(state_dir, run, make_config("process"), recover=False) as rt:
        report = rt.recover(step_timeout=step_timeout, sandbox_timeout=sandbox_timeout)
        by_id = {s.id: s for s in report.sandboxes}
        assert by_id["healthy"].error is None, str(report)
        assert rt.state("healthy").containers[CID].state == "created"
        wedged = by_id["wedged"]
        assert not report.ok and "process:guest" in wedged.held, str(report)
        if sandbox_timeout is None:
            assert "start_container_in_guest" in wedged.error, str(report)
            state = rt.state("wedged")
            assert state.operation is None and state.state == "running"
        else:
            assert wedged.timed_out, str(report)
        for sandbox in ("healthy", "wedged"):
            finish(rt, run, sandbox)
    assert leftovers(run) == ([], [])


def test_mounts_gone_are_recorded_and_unknown_ones_reported(dirs: tuple[Path, Path]) -> None:
    rt = up(dirs)
    layout = rt.layout(SBX)
    extra = layout.mounts / "extra"
    try:
        volume = next(r for r in rt.state(SBX).ledger.values() if r.get("role") == "volume")
        unmount(volume["path"])
        extra.mkdir()
        bind_mount(str(volume_of(dirs)), str(extra), within=layout.mounts)
        before = rt.store.last_position()
        dry = rt.recover(dry_run=True, step_timeout=5.0)
        assert rt.store.last_position() == before, "a dry run wrote events"
        report = rt.recover(step_timeout=5.0)
        found = "\n".join(report.sandboxes[0].found)
        assert f"unknown mount {extra} " in found and volume["key"] in found, str(report)
        assert str(dry).count("unknown mount") == str(report).count("unknown mount")
        assert volume["key"] not in rt.state(SBX).ledger
        assert is_mounted(extra), "recovery removed a mount it does not own"
        unmount(layout.shared / "extra")
        unmount(extra)
        finish(rt, dirs[1])
    finally:
        rt.close()
