"""Operations on running sandboxes and containers against the real guest: pause/resume
seen in the cgroup's freezer, copy file in the guest dir, the machine calls (each logged),
the reads (not logged), and a failing rpc compensated (the opposite rpc) with the state
left as it was."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hostcheck import command_pids, freezer_state, make_config

from agent_io import AgentDead
from agent_io.faults import ENV_VAR
from sandbox_fsm import Runtime
from sandbox_fsm.errors import (
    GuestError,
    IllegalTransition,
    InvalidRequest,
    OperationFailed,
    SandboxError,
)
from sandbox_fsm.spec import ContainerConfig, SandboxConfig

SID = "sb"


def proc_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def wait_state(pid: int, want: str) -> None:
    """A paused container's cgroup is FROZEN (runc pause), a resumed one THAWED."""
    frozen = {"T": "FROZEN", "S": "THAWED"}[want]
    for _ in range(200):
        if freezer_state(pid) == frozen:
            return
        time.sleep(0.01)
    assert freezer_state(pid) == frozen, f"pid {pid}'s cgroup is {freezer_state(pid)}"


def pids(rt: Runtime, cid: str) -> list[int]:
    """Pids of the container's processes, from the guest's ps (process driver: host pids)."""
    def listed() -> list[int]:
        found = json.loads(rt.list_processes(SID, cid, format="json"))
        return [p["pid"] if isinstance(p, dict) else p for p in found]

    return command_pids(listed)


def last_op(rt: Runtime) -> list[str]:
    events = rt.events(SID)
    start = max(i for i, e in enumerate(events) if e.type == "OperationStarted")
    return [e.type for e in events[start:]]


@pytest.fixture
def running(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A running sandbox (process driver) with `sleep` containers; faults optional."""
    opened: list[Runtime] = []

    def start(*cids: str, faults: list | None = None, **hypervisor: object) -> Runtime:
        if faults is not None:
            monkeypatch.setenv(ENV_VAR, json.dumps(faults))
        config = make_config("process")
        if hypervisor:
            config = dataclasses.replace(
                config, hypervisor=dataclasses.replace(config.hypervisor, **hypervisor))
        rt = Runtime.open(dirs[0], dirs[1], config)
        opened.append(rt)
        rt.create_sandbox(SandboxConfig(SID))
        rt.start_sandbox(SID)
        for cid in cids:
            rt.create_container(SID, ContainerConfig(cid, args=("sleep", "60")))
            rt.start_container(SID, cid)
        return rt

    yield start
    for rt in opened:
        rt.delete_sandbox(SID, force=True)
        assert not rt.state(SID).ledger
        rt.close()


def test_pause_and_resume_a_container_are_seen_in_proc(running):
    rt = running("c1")
    (pid,) = pids(rt, "c1")
    rt.pause_container(SID, "c1")
    assert rt.state(SID).containers["c1"].state == "paused"
    wait_state(pid, "T")
    assert last_op(rt) == ["OperationStarted", "StepStarted", "ContainerPaused",
                           "OperationCompleted"]
    with pytest.raises(IllegalTransition):
        rt.pause_container(SID, "c1")
    rt.resume_container(SID, "c1")
    assert rt.state(SID).containers["c1"].state == "running"
    wait_state(pid, "S")


def test_pause_and_resume_the_sandbox_freeze_every_running_container(running):
    rt = running("c1", "c2")
    all_pids = pids(rt, "c1") + pids(rt, "c2")
    rt.pause_sandbox(SID)
    assert rt.state(SID).state == "paused"
    for pid in all_pids:
        wait_state(pid, "T")
    with pytest.raises(InvalidRequest, match="not running"):
        rt.stats(SID, "c1")
    rt.resume_sandbox(SID)
    assert rt.state(SID).state == "running"
    for pid in all_pids:
        wait_state(pid, "S")


def test_a_failing_sandbox_pause_resumes_what_it_paused(running):
    rt = running("c1", "c2", faults=[
        {"rpc": "PauseContainer", "nth": 2, "action": "error", "code": "INTERNAL"}])
    first = pids(rt, "c1")[0]
    with pytest.raises(OperationFailed, match="pause_containers"):
        rt.pause_sandbox(SID)
    assert rt.state(SID).state == "running"
    assert last_op(rt)[-3:] == ["CompensationStarted", "StepCompensated", "OperationAborted"]
    wait_state(first, "S")


def test_failing_pause_and_resume_leave_the_container_as_it_was(running):
    rt = running("c1", faults=[
        {"rpc": "PauseContainer", "nth": 1, "action": "error", "code": "INTERNAL"},
        # call 1 of ResumeContainer is the failed pause's compensation (the guest answers
        # "not paused", which counts as done); call 2 is the resume below
        {"rpc": "ResumeContainer", "nth": 2, "action": "error", "code": "INTERNAL"}])
    (pid,) = pids(rt, "c1")
    with pytest.raises(OperationFailed, match="pause_container_in_guest"):
        rt.pause_container(SID, "c1")
    assert rt.state(SID).containers["c1"].state == "running"
    rt.pause_container(SID, "c1")
    wait_state(pid, "T")
    with pytest.raises(OperationFailed, match="resume_container_in_guest"):
        rt.resume_container(SID, "c1")
    assert rt.state(SID).containers["c1"].state == "paused"
    wait_state(pid, "T")


def test_copy_file_lands_in_the_guest_dir(running, tmp_path):
    rt = running()
    src = tmp_path / "payload"
    src.write_bytes(b"x" * (3 << 20) + b"tail")   # more than one 1 MiB chunk
    src.chmod(0o640)
    rt.copy_file(SID, src, "/etc/kata/payload")
    landed = rt.layout(SID).guest_dir / "etc/kata/payload"
    assert landed.read_bytes() == src.read_bytes()
    assert landed.stat().st_mode & 0o777 == 0o640
    copied = rt.events(SID)[-2].data
    assert (copied["dst"], copied["size"]) == ("/etc/kata/payload", (3 << 20) + 4)
    with pytest.raises(InvalidRequest, match="not absolute"):
        rt.copy_file(SID, src, "etc/x")


def test_a_failing_copy_aborts_and_the_sandbox_stays_running(running, tmp_path):
    rt = running(faults=[{"rpc": "CopyFile", "nth": 1, "action": "error", "code": "INTERNAL"}])
    src = tmp_path / "f"
    src.write_text("data")
    with pytest.raises(OperationFailed, match="copy_file"):
        rt.copy_file(SID, src, "/f")
    assert rt.state(SID).state == "running" and rt.state(SID).operation is None
    rt.copy_file(SID, src, "/f")
    assert (rt.layout(SID).guest_dir / "f").read_text() == "data"


def test_update_tty_and_stdin_are_logged_stats_and_ps_are_not(running):
    rt = running("c1")
    rt.update_container(SID, "c1", {"memory": {"limit": 256 << 20}, "pids": {"limit": 64}})
    version = rt.state(SID).version
    stats = rt.stats(SID, "c1")
    assert stats["memory_limit"] == 256 << 20 and stats["pids_limit"] == 64
    assert stats["pids_current"] == 2 and stats["memory_usage"] > 0   # init and sleep
    table = rt.list_processes(SID, "c1")
    assert b"PID" in table and b"sleep 60" in table
    assert rt.state(SID).version == version, "a read appended to the log"
    rt.create_container(SID, ContainerConfig("tty", args=("sleep", "60"), terminal=True))
    rt.start_container(SID, "tty")
    rt.tty_resize(SID, "tty", 40, 120)
    rt.create_container(SID, ContainerConfig("cat", args=("cat",)))
    rt.start_container(SID, "cat")
    rt.write_stdin(SID, "cat", b"echoed\n")
    rt.close_stdin(SID, "cat")
    assert rt.read_stdout(SID, "cat") == b"echoed\n"
    assert rt.wait(SID, "cat") == 0
    seen = {e.type for e in rt.events(SID)}
    assert {"ContainerUpdated", "TtyResized", "StdinClosed"} <= seen
    assert not {"StatsRead", "ProcessesListed"} & seen
    with pytest.raises(InvalidRequest, match="linux.resources"):
        rt.update_container(SID, "c1", {"memory": {"limit": "lots"}})


def test_guest_machine_calls_are_logged(running):
    block = int(Path("/sys/devices/system/memory/block_size_bytes").read_text(), 16)
    rt = running(memory_section_size_mb=block >> 20)
    version = rt.state(SID).version
    details = rt.guest_details(SID)
    assert details.agent_details.version.startswith("sandbox-fsm-guest")
    assert details.mem_block_size_bytes == block
    assert rt.state(SID).version == version, "a read appended to the log"
    rt.online_cpu_mem(SID, 2)
    rt.hotplug_memory(SID, 1 << 32, 2 * (block >> 20))
    rt.reseed_rng(SID, 64)
    rt.set_guest_time(SID, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    data = {e.type: e.data for e in rt.events(SID)}
    assert "GuestDetailsRead" not in data
    assert data["MemoryHotplugged"] == {**data["MemoryHotplugged"], "addr": 1 << 32,
                                        "sections": 2}
    assert data["RNGReseeded"]["bytes"] == 64
    assert data["GuestTimeSet"]["time"] == "2030-01-02T03:04:05+00:00"
    assert "CPUMemOnlined" in data
    with pytest.raises(OperationFailed, match="mem_hotplug_by_probe"):
        rt.hotplug_memory(SID, (1 << 32) + 4096, block >> 20)   # misaligned: the guest refuses
    assert rt.state(SID).state == "running"


@pytest.mark.root
@pytest.mark.timeout(60)
def test_an_oom_kill_is_reported_and_recorded(running):
    """A memory limit set by UpdateContainer (runc update) is enforced by the container's
    cgroup: the kernel kills the hog, the guest reports it, the runtime records it."""
    rt = running()
    rt.create_container(SID, ContainerConfig("hog", args=(
        "sh", "-c", "read go && exec tail /dev/zero")))
    rt.start_container(SID, "hog")
    rt.update_container(SID, "hog", {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    rt.write_stdin(SID, "hog", b"go\n")
    assert rt.wait_oom_event(SID) == "hog"
    assert rt.wait(SID, "hog") == 137
    assert any(e.type == "ContainerOOMKilled" and e.data["container"] == "hog"
               for e in rt.events(SID))


def test_reads_refuse_a_sandbox_not_running_and_a_dead_guest_is_a_sandbox_error(running):
    rt = running("c1")
    rt.pause_sandbox(SID)
    with pytest.raises(InvalidRequest, match="is paused, not running"):
        rt.stats(SID, "c1")
    with pytest.raises(InvalidRequest, match="is paused, not running"):
        rt.list_interfaces(SID)
    rt.resume_sandbox(SID)
    with pytest.raises(InvalidRequest, match="it is new"):
        rt.stats(SID, "nope")
    guest = rt.state(SID).guest
    assert guest is not None
    os.kill(guest["pid"], 9)
    for _ in range(200):
        if not Path(f"/proc/{guest['pid']}").exists() or proc_state(guest["pid"]) == "Z":
            break
        time.sleep(0.01)
    for read in (lambda: rt.stats(SID, "c1"), lambda: rt.read_stdout(SID, "c1"),
                 lambda: rt.guest_details(SID)):
        with pytest.raises(GuestError) as caught:
            read()
        assert isinstance(caught.value, SandboxError) and caught.value.exit_code == 1
        assert isinstance(caught.value.cause, AgentDead)
    rt.recover()    # the guest is gone: recovery marks the sandbox lost and releases it
    assert rt.state(SID).lost


def test_a_failed_teardown_says_it_rolls_forward(running):
    # (a failing DestroySandbox no longer fails stop_sandbox: it is recorded and the VM is
    # stopped anyway, see tests/cli/test_cli_teardown.py; SignalProcess still fails a stop)
    rt = running("c1", faults=[{"rpc": "SignalProcess", "nth": 1, "action": "error",
                                "code": "INTERNAL"}])
    with pytest.raises(OperationFailed,
                       match="rolled forward, container 'c1' is running") as caught:
        rt.stop_container(SID, "c1")
    assert caught.value.state == "running"
