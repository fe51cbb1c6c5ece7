"""Every step of every operation fails in turn, on a real host; the operation rolls back.

Agent rpcs fail through a fault plan ($SBX_AGENT_FAULTS, inherited by the guest agent);
host steps fail for real (missing sources, a planted symlink, a socket path taken, a
guest that cannot start). After each: OperationFailed names the operation and step, the
log shows StepFailed, the compensations in reverse and OperationAborted, the state is
the one before, and the host holds nothing the operation created.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lifekit import CID, SID, HostView

from agent_io.faults import ENV_VAR
from sandbox_fsm import Runtime
from sandbox_fsm.errors import NotFound, OperationFailed
from sandbox_fsm.host import SandboxLayout
from sandbox_fsm.spec import ContainerConfig, Mount, SandboxConfig
from sandbox_fsm.state import SandboxState

pytestmark = pytest.mark.root

SLEEPER = ContainerConfig(id=CID, args=("sleep", "60"))


def created(rt: Runtime, tmp: Path) -> None:
    rt.create_sandbox(SandboxConfig(id=SID))


def running(rt: Runtime, tmp: Path) -> None:
    created(rt, tmp)
    rt.start_sandbox(SID)


def with_container(rt: Runtime, tmp: Path) -> None:
    running(rt, tmp)
    rt.create_container(SID, SLEEPER)


def with_running_container(rt: Runtime, tmp: Path) -> None:
    with_container(rt, tmp)
    rt.start_container(SID, CID)


def fail(rpc: str, code: str = "INTERNAL") -> list[dict]:
    return [{"rpc": rpc, "nth": 1, "action": "error", "code": code}]


@dataclass
class Case:
    setup: Callable[[Runtime, Path], None]
    act: Callable[[Runtime, Path], object]
    operation: str
    step: str
    done: list[str]                  # domain events of the steps that completed
    undone: list[str]                # compensations, in the order they must run
    faults: list[dict] | str | None = None
    proxy: str = "builtin"
    driver: str = "process"
    plant: Callable[[Path, Path], None] | None = None   # (runtime dir, tmp) before `act`
    planted: set[str] = field(default_factory=set)       # planted paths the undo may remove


def missing_rootfs(rt: Runtime, tmp: Path) -> object:
    return rt.create_container(SID, ContainerConfig(id=CID, rootfs=str(tmp / "nope")))


def missing_volume(rt: Runtime, tmp: Path) -> object:
    return rt.create_container(SID, ContainerConfig(
        id=CID, mounts=(Mount(str(tmp / "no-volume"), "/data"),)))


def with_volume(rt: Runtime, tmp: Path) -> object:
    (tmp / "vol").mkdir()
    return rt.create_container(SID, ContainerConfig(id=CID, mounts=(Mount(str(tmp / "vol"),
                                                                         "/data"),)))


def plant_symlinked_target(run: Path, tmp: Path) -> None:
    (tmp / "elsewhere").mkdir()
    os.symlink(tmp / "elsewhere", run / "sandboxes" / SID / "mounts" / CID)


def plant_proxy_socket(run: Path, tmp: Path) -> None:
    SandboxLayout(run, SID).proxy_socket.write_text("not a socket")


def plant_open_sandboxes_dir(run: Path, tmp: Path) -> None:
    (run / "sandboxes").mkdir(mode=0o777, exist_ok=True)
    os.chmod(run / "sandboxes", 0o777)


START_DONE = ["VMStarted", "ProxyStarted", "AgentChecked"]
CASES = {
    # agent rpcs
    "CreateSandbox": Case(created, lambda rt, t: rt.start_sandbox(SID), "start_sandbox",
                          "create_sandbox_in_guest", START_DONE,
                          ["create_sandbox_in_guest", "start_proxy", "start_vm"],
                          fail("CreateSandbox")),
    "CreateSandbox-proxy-ns": Case(created, lambda rt, t: rt.start_sandbox(SID),
                                   "start_sandbox", "create_sandbox_in_guest", START_DONE,
                                   ["create_sandbox_in_guest", "start_proxy", "start_vm"],
                                   fail("CreateSandbox"), proxy="process",
                                   driver="namespaces"),
    "Check": Case(created, lambda rt, t: rt.start_sandbox(SID), "start_sandbox", "check_agent",
                  START_DONE[:2], ["start_proxy", "start_vm"], fail("Check")),
    "Check-exit": Case(created, lambda rt, t: rt.start_sandbox(SID), "start_sandbox",
                       "check_agent", START_DONE[:2], ["start_proxy", "start_vm"],
                       [{"rpc": "Check", "nth": 1, "action": "exit"}], driver="namespaces"),
    "CreateContainer": Case(running, lambda rt, t: rt.create_container(SID, SLEEPER),
                            "create_container", "create_container_in_guest", ["RootfsMounted"],
                            ["create_container_in_guest", "mount_rootfs"],
                            fail("CreateContainer")),
    "CreateContainer-volume-ns": Case(running, with_volume, "create_container",
                                      "create_container_in_guest",
                                      ["RootfsMounted", "VolumeMounted"],
                                      ["create_container_in_guest", "mount_volume",
                                       "mount_rootfs"], fail("CreateContainer"),
                                      driver="namespaces"),
    "StartContainer": Case(with_container, lambda rt, t: rt.start_container(SID, CID),
                           "start_container", "start_container_in_guest", [],
                           ["start_container_in_guest"], fail("StartContainer")),
    "ExecProcess": Case(with_running_container, lambda rt, t: rt.exec(SID, CID, ["true"]),
                        "exec", "exec_process", [], ["exec_process"], fail("ExecProcess")),
    "SignalProcess": Case(with_running_container, lambda rt, t: rt.stop_container(SID, CID),
                          "stop_container", "signal_container", [], [],
                          fail("SignalProcess")),
    "SignalProcess-kill": Case(with_running_container, lambda rt, t: rt.kill(SID, CID, 15),
                               "kill", "signal_process", [], [], fail("SignalProcess")),
    # (DestroySandbox failing no longer fails stop_sandbox: the teardown records it and
    # stops the VM anyway, tests/cli/test_cli_teardown.py)
    # host steps
    "sandboxes-dir-unsafe": Case(lambda rt, t: None,
                                 lambda rt, t: rt.create_sandbox(SandboxConfig(id=SID)),
                                 "create_sandbox", "create_shared_path", [],
                                 ["create_shared_path"], plant=plant_open_sandboxes_dir),
    "rootfs-missing": Case(running, missing_rootfs, "create_container", "mount_rootfs", [],
                           ["mount_rootfs"]),
    "volume-missing": Case(running, missing_volume, "create_container", "mount_volume",
                           ["RootfsMounted"], ["mount_volume", "mount_rootfs"]),
    "target-symlink": Case(running, lambda rt, t: rt.create_container(SID, SLEEPER),
                           "create_container", "mount_rootfs", [], ["mount_rootfs"],
                           plant=plant_symlinked_target, planted={f"sandboxes/{SID}/mounts/{CID}"}),
    "proxy-socket-taken": Case(created, lambda rt, t: rt.start_sandbox(SID), "start_sandbox",
                               "start_proxy", ["VMStarted"], ["start_proxy", "start_vm"],
                               proxy="process", plant=plant_proxy_socket,
                               planted={str(SandboxLayout(Path("/r"), SID).proxy_socket
                                            .relative_to("/r"))}),
    "guest-cannot-start": Case(created, lambda rt, t: rt.start_sandbox(SID), "start_sandbox",
                               "start_vm", [], ["start_vm"], faults="[not json"),
}


def comparable(rt: Runtime) -> dict:
    """What a rollback must restore: lifecycle state, containers and resource ledger."""
    try:
        state = rt.state(SID)
    except NotFound:
        state = SandboxState(id=SID)
    return {"state": state.state, "ledger": state.ledger, "lost": state.lost,
            "containers": {cid: c.__dict__ for cid, c in state.containers.items()}}


@pytest.mark.parametrize("name", list(CASES))
def test_step_failure_rolls_back(name: str, open_rt, dirs, tmp_path: Path,  # noqa: F811
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    if case.faults is not None:
        plan = case.faults if isinstance(case.faults, str) else json.dumps(case.faults)
        monkeypatch.setenv(ENV_VAR, plan)
    rt = open_rt(case.driver, type=case.proxy)
    view = HostView(dirs[1])
    case.setup(rt, tmp_path)
    if case.plant:
        case.plant(dirs[1], tmp_path)
    before_state, before_host = comparable(rt), view.snapshot()
    guest = rt.state(SID).guest if before_state["state"] != "new" else None
    guest_view = view.mounts_seen_by(guest["pid"]) if guest else None
    before_events = len(list(rt.store.read_all()))
    outside = tmp_path / "elsewhere"
    elsewhere = sorted(os.listdir(outside)) if outside.exists() else None

    with pytest.raises(OperationFailed) as info:
        case.act(rt, tmp_path)
    err = info.value
    assert err.step == case.step and case.operation in err.operation
    assert case.operation in str(err) and case.step in str(err) and SID in str(err)

    events = list(rt.store.read_all())[before_events:]
    types = [e.type for e in events]
    expected = ["OperationStarted"]
    for domain in case.done:
        expected += ["StepStarted", domain]
    expected += ["StepStarted", "StepFailed", "CompensationStarted"]
    expected += ["StepCompensated"] * len(case.undone) + ["OperationAborted"]
    assert types == expected
    assert events[0].data["operation"] == case.operation
    failed = events[types.index("StepFailed")].data
    assert failed["step"] == case.step and failed["error"]["message"]
    assert [e.data["step"] for e in events if e.type == "StepCompensated"] == case.undone
    assert events[-1].data["state"] == err.state != "failed"

    assert comparable(rt) == before_state
    assert rt.state(SID).operation is None
    mounts, pids, files = view.snapshot()
    assert (mounts, pids) == before_host[:2]
    assert before_host[2] - case.planted <= files <= before_host[2], files ^ before_host[2]
    if guest_view is not None and case.driver == "namespaces":
        assert view.mounts_seen_by(guest["pid"]) == guest_view
    if elsewhere is not None:
        assert sorted(os.listdir(outside)) == elsewhere, f"{outside} was written to"
    assert rt.store.verify().ok
    if before_state["state"] != "new":
        rt.delete_sandbox(SID, force=True)


def test_failed_teardown_is_finished_by_running_it_again(open_rt, dirs,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop that fails past its first step leaves the container `failed`, never half
    undone; stopping it again finishes the teardown."""
    monkeypatch.setenv(ENV_VAR, json.dumps(fail("RemoveContainer")))
    rt = open_rt("process")
    with_running_container(rt, Path())
    with pytest.raises(OperationFailed) as info:
        rt.stop_container(SID, CID)
    assert info.value.step == "remove_container_in_guest" and info.value.state == "failed"
    tail = [e.type for e in rt.events(SID)][-7:]
    assert tail == ["OperationStarted", "StepStarted", "ContainerStopped", "StepStarted",
                    "StepFailed", "CompensationStarted", "OperationAborted"]
    assert rt.state(SID).containers[CID].state == "failed"
    rt.stop_container(SID, CID)
    rt.delete_container(SID, CID)
    assert rt.state(SID).containers[CID].state == "deleted"
    rt.delete_sandbox(SID, force=True)
    assert rt.state(SID).ledger == {}
    assert HostView(dirs[1]).snapshot()[:2] == ([], [])
