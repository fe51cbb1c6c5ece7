"""The whole lifecycle on a real host: the log follows the protocol and the host ends clean.

Real LMDB, the reference guest agent over gRPC, real bind mounts (root) and processes.
Shared helpers live in lifekit.py, shared fixtures (`open_rt`, `dirs`) in conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lifekit import CID, SID, HostView

from sandbox_fsm import Runtime
from sandbox_fsm.spec import ContainerConfig, Mount, SandboxConfig

pytestmark = pytest.mark.root


DOMAIN = {
    "create_sandbox": ["SharedPathCreated", "SharedDirMounted"],
    "start_sandbox": ["VMStarted", "ProxyStarted", "AgentChecked", "GuestSandboxCreated"],
    "create_container": ["RootfsMounted", "ContainerCreated"],
    "start_container": ["ContainerStarted"],
    "stop_container": ["ContainerStopped", "ContainerRemoved"],
    "delete_container": ["ContainerMountsUnmounted", "DevicesDetached"],
    "stop_sandbox": ["GuestSandboxDestroyed", "ProxyStopped", "VMStopped"],
    "delete_sandbox": ["ContainerMountsUnmounted", "SharedDirUnmounted", "SandboxDirRemoved",
                       "DevicesDetached", "NothingHeld"],
    "exec": ["ProcessStarted"],
}


def completed(*domain: str) -> list[str]:
    """The event types of an operation that ran the steps recording `domain`."""
    types = ["OperationStarted"]
    for event in domain:
        types += ["StepStarted", event]
    return types + ["OperationCompleted"]


class CommitCounter:
    """Counts durable appends by wrapping the store's append (a spy, not a mock)."""

    def __init__(self, rt: Runtime) -> None:
        self.count = 0
        real = rt.store.append

        def append(*args: object, **kwargs: object) -> object:
            result = real(*args, **kwargs)
            self.count += 1
            return result

        rt.store.append = append  # type: ignore[method-assign]

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def read_all_stdout(rt: Runtime, sid: str, cid: str, exec_id: str | None = None) -> bytes:
    out = b""
    while chunk := rt.read_stdout(sid, cid, exec_id):
        out += chunk
    return out




@pytest.mark.parametrize("proxy", ["builtin", "process"])
def test_full_lifecycle(open_rt, dirs, driver: str, proxy: str) -> None:
    rt = open_rt(driver, type=proxy)
    view = HostView(dirs[1])
    commits = CommitCounter(rt)
    per_op: dict[str, int] = {}

    def run(name: str, call, *args):
        result = call(*args)
        per_op[name] = commits.take()
        return result

    run("create_sandbox", rt.create_sandbox, SandboxConfig(id=SID))
    run("start_sandbox", rt.start_sandbox, SID)
    run("create_container", rt.create_container, SID,
        ContainerConfig(id=CID, args=("sh", "-c", "echo hi; exit 3")))
    run("start_container", rt.start_container, SID, CID)
    assert read_all_stdout(rt, SID, CID) == b"hi\n"
    assert run("wait", rt.wait, SID, CID) == 3
    assert rt.state(SID).containers[CID].exit_status == 3
    run("stop_container", rt.stop_container, SID, CID)
    run("delete_container", rt.delete_container, SID, CID)
    held = rt.state(SID)
    pids = [held.guest["pid"]] + ([held.proxy["pid"]] if proxy == "process" else [])
    assert (held.proxy is not None) == (proxy == "process")
    assert all(alive(pid) for pid in pids)
    run("stop_sandbox", rt.stop_sandbox, SID)
    run("delete_sandbox", rt.delete_sandbox, SID)

    order = ["create_sandbox", "start_sandbox", "create_container", "start_container",
             None, "stop_container", "delete_container", "stop_sandbox", "delete_sandbox"]
    expected = [t for op in order
                for t in (completed(*DOMAIN[op]) if op else ["ProcessExited"])]
    assert [e.type for e in rt.events(SID)] == expected
    # one durable commit per side effect: steps + 1 per operation, one per recorded fact
    assert per_op == {op: len(DOMAIN[op]) + 1 for op in order if op} | {"wait": 1}

    final = rt.state(SID)
    assert final.state == "deleted" and final.ledger == {} and final.operation is None
    assert final.containers[CID].state == "deleted"
    assert view.mounts() == [] and view.pids() == []
    assert not any(alive(pid) for pid in pids)
    assert not (dirs[1] / "sandboxes" / SID).exists()
    assert rt.store.verify().ok


def test_volume_and_exec(open_rt, dirs, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "greeting").write_text("from the host\n")
    rt = open_rt("namespaces")
    rt.create_sandbox(SandboxConfig(id=SID))
    rt.start_sandbox(SID)
    commits = CommitCounter(rt)
    rt.create_container(SID, ContainerConfig(
        id=CID, args=("sh", "-c", "echo up; exec sleep 60"),
        mounts=(Mount(str(volume), "/data", readonly=True),)))
    assert commits.take() == 3 + 1
    assert [e.type for e in rt.events(SID)][-8:] == completed(
        "RootfsMounted", "VolumeMounted", "ContainerCreated")
    state = rt.state(SID)
    vol_mounts = [r for r in state.ledger.values() if r.get("role") == "volume"]
    assert len(vol_mounts) == 1 and vol_mounts[0]["destination"] == "/data"
    assert vol_mounts[0]["path"] in HostView(dirs[1]).mounts()

    rt.start_container(SID, CID)
    assert commits.take() == 1 + 1
    assert rt.read_stdout(SID, CID) == b"up\n"
    # The default rootfs is the host's / seen read-only; the volume is at its destination.
    seen = "/data"
    exec_id = rt.exec(SID, CID, ["sh", "-c", f"cat {seen}/greeting; exit 7"])
    assert commits.take() == 1 + 1
    assert read_all_stdout(rt, SID, CID, exec_id) == b"from the host\n"
    assert rt.wait(SID, CID, exec_id) == 7
    assert rt.state(SID).containers[CID].processes[exec_id] == {"status": 7}
    writer = rt.exec(SID, CID, ["sh", "-c", f"echo x > {seen}/new"])
    assert rt.wait(SID, CID, writer) != 0, "a read-only volume was writable in the guest"
    assert sorted(os.listdir(volume)) == ["greeting"]

    rt.stop_container(SID, CID)
    assert rt.state(SID).containers[CID].state == "stopped"
    rt.delete_container(SID, CID)
    assert [m for m in HostView(dirs[1]).mounts() if "/mounts/" in m] == []
    rt.delete_sandbox(SID, force=True)
    assert rt.state(SID).ledger == {}
    assert HostView(dirs[1]).snapshot()[:2] == ([], [])
    assert (volume / "greeting").read_text() == "from the host\n"
