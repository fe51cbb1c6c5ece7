"""Image drives on the namespaces driver: a real loop device attached by a journalled step,
mounted by the agent in the guest's mount namespace, detached on delete, on a failed
create's rollback, and by recovery after a crash at the attach or detach step.

Every check reads the host: `losetup -a`, /sys/block/loop*/loop, the guest's mountinfo,
the image's own contents (debugfs, without mounting it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import device_child as child
import pytest
from crash_checks import REPO, check_recovered
from hostcheck import leftovers, make_config

from agent_io.faults import ENV_VAR
from sandbox_fsm import ContainerConfig, Runtime, SandboxConfig
from sandbox_fsm.errors import InvalidRequest, OperationFailed
from sandbox_fsm.host import SandboxLayout, loopdev
from sandbox_fsm.operations.devices import tag_prefix

SID, CID = child.SANDBOX, child.CONTAINER


def _losetup() -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout


def _ours(run: Path) -> list[loopdev.LoopDevice]:
    return loopdev.find(tag_prefix(SandboxLayout(run, SID)))


def _image_file(image: Path, path: str) -> str:
    """A file's contents read from the image itself, without mounting it."""
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def image(tmp_path: Path, dirs: tuple[Path, Path]) -> Iterator[Path]:
    """A sparse 8 MB ext4 image holding a busybox rootfs at /rootfs (the seed's layout);
    every device tagged for the test's sandbox is detached afterwards."""
    root = tmp_path / "content" / "rootfs"
    for name in ("bin", "proc", "dev", "sys", "tmp", "run"):   # runc mounts onto all but bin
        (root / name).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(tmp_path / "content"), str(img)], check=True)
    yield img
    for dev in _ours(dirs[1]):
        loopdev.detach(dev.tag)


def _guest_mount(pid: int, point: str) -> tuple[str, str] | None:
    """(fstype, source) of the mount at `point` in pid's mount namespace."""
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if left.split()[4] == point:
                fstype, source = right.split()[:2]
                return fstype, source
    return None


def _running(rt: Runtime, config: ContainerConfig) -> Runtime:
    """rt with sandbox SID running and `config` created in it."""
    rt.create_sandbox(SandboxConfig(id=SID))
    rt.start_sandbox(SID)
    rt.create_container(SID, config)
    return rt


@pytest.mark.root
def test_image_rootfs_is_attached_mounted_in_the_guest_and_detached(
        open_rt, dirs: tuple[Path, Path], image: Path) -> None:
    rt = _running(open_rt("namespaces"), child.image_container(str(image)))
    state = rt.state(SID)
    dev = state.ledger[f"device:{CID}/root"]
    assert (dev["kind"], dev["type"], dev["backing_file"]) == ("device", "loop", str(image))
    assert Path(f"/sys/block/{os.path.basename(dev['path'])}/loop/backing_file"
                ).read_text().strip() == str(image)
    assert f"({image})" in _losetup()
    guest = state.ledger["process:guest"]["pid"]
    point = str(rt.layout(SID).shared / CID)
    assert _guest_mount(guest, point) == ("ext4", dev["path"])
    assert _guest_mount(os.getpid(), point) is None, "the guest's mount leaked to the host"
    rt.start_container(SID, CID)
    assert rt.wait(SID, CID) == 0
    rt.stop_container(SID, CID)
    rt.delete_container(SID, CID)
    assert str(image) not in _losetup() and not _ours(dirs[1])
    assert f"device:{CID}/root" not in rt.state(SID).ledger
    assert "DevicesDetached" in [e.type for e in rt.events(SID)]
    rt.stop_sandbox(SID)
    rt.delete_sandbox(SID)
    assert rt.state(SID).ledger == {}
    assert _image_file(image, "/rootfs/written") == "persisted\n"


@pytest.mark.root
def test_failed_create_after_attach_detaches_the_device(
        open_rt, dirs: tuple[Path, Path], image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, json.dumps(
        [{"rpc": "CreateContainer", "nth": 1, "action": "error", "code": "INTERNAL"}]))
    rt = open_rt("namespaces")
    rt.create_sandbox(SandboxConfig(id=SID))
    rt.start_sandbox(SID)
    with pytest.raises(OperationFailed, match="create_container_in_guest"):
        rt.create_container(SID, child.image_container(str(image)))
    types = [(e.type, e.data.get("step")) for e in rt.events(SID)]
    attached = types.index(("DeviceAttached", "attach_device"))
    assert ("StepCompensated", "attach_device") in types[attached:]
    assert str(image) not in _losetup() and not _ours(dirs[1])
    state = rt.state(SID)
    assert CID not in state.containers or state.containers[CID].state != "created"
    assert not [k for k in state.ledger if k.startswith("device:")]
    rt.stop_sandbox(SID)
    rt.delete_sandbox(SID)
    assert leftovers(dirs[1]) == ([], [])


def _crash(state: Path, run: Path, image: Path, knob: str, ops: tuple[str, ...]) -> None:
    env = {**os.environ, "SBX_CRASH_AT": knob,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, child.__file__, str(state), str(run), str(image),
                           ",".join(ops)], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, f"{knob}: exited {proc.returncode}\n{proc.stderr.decode()}"


# knob -> (operations the child runs, devices attached at the crash, container after recovery)
CRASHES = {
    "attach_device:before": (child.LIFECYCLE[:3], 0, None),
    "attach_device:after": (child.LIFECYCLE[:3], 1, None),
    "detach_devices:before#1": (child.LIFECYCLE[:7], 1, "deleted"),
    "detach_devices:after#1": (child.LIFECYCLE[:7], 0, "deleted"),
}


@pytest.mark.root
@pytest.mark.parametrize("knob", list(CRASHES))
def test_crash_at_a_device_step_is_recovered_with_no_loop_device_left(
        dirs: tuple[Path, Path], image: Path, knob: str) -> None:
    state_dir, run = dirs
    ops, at_crash, container = CRASHES[knob]
    _crash(state_dir, run, image, knob, ops)
    assert len(_ours(run)) == at_crash, _losetup()
    with Runtime.open(state_dir, run, make_config("namespaces")) as rt:
        state = check_recovered(rt, run, SID)
        got = state.containers.get(CID)
        assert (got.state if got else None) in ((container,) if container else
                                                (None, "failed", "deleted"))
        assert not _ours(run) and str(image) not in _losetup(), _losetup()
        assert not [k for k in state.ledger if k.startswith("device:")]
        if container == "deleted":
            assert _image_file(image, "/rootfs/written") == "persisted\n"
        rt.stop_sandbox(SID)
        rt.delete_sandbox(SID)
        assert rt.state(SID).ledger == {}
    assert leftovers(run) == ([], [])


@pytest.mark.root
def test_image_drives_are_refused_before_any_event(
        open_rt, tmp_path: Path, image: Path) -> None:
    rt = open_rt("process")
    rt.create_sandbox(SandboxConfig(id=SID))
    before = rt.store.last_position()
    link = tmp_path / "link.img"
    link.symlink_to(image)
    refused = {
        "needs the namespaces": {"id": "r", "image": str(image), "fstype": "ext4"},
        "not a regular file": {"id": "r", "image": str(link), "fstype": "ext4"},
        "is not one of": {"id": "r", "image": str(image), "fstype": "vfat"},
        "clean absolute": {"id": "r", "image": "disk.img", "fstype": "ext4"},
    }
    for why, entry in refused.items():
        with pytest.raises(InvalidRequest, match=why):
            rt.create_container(SID, ContainerConfig(id=CID, rootfs_device=entry))
    assert rt.store.last_position() == before
    rt.delete_sandbox(SID)


@pytest.mark.root
def test_recovery_detaches_a_stray_device_and_forgets_one_the_kernel_lost(
        open_rt, dirs: tuple[Path, Path], image: Path, tmp_path: Path) -> None:
    rt = _running(open_rt("namespaces"), child.image_container(str(image)))
    rt.stop_sandbox(SID)             # the guest's mount is gone; the device is still ours
    held = rt.state(SID).ledger[f"device:{CID}/root"]
    assert loopdev.detach(held["tag"])   # the kernel loses it behind our back
    spare = tmp_path / "spare.img"
    shutil.copy(image, spare)
    stray = loopdev.attach(spare, tag_prefix(rt.layout(SID)) + "stray")
    report = rt.recover(step_timeout=5.0)
    assert report.ok, str(report)
    assert not _ours(dirs[1]) and f"({spare})" not in _losetup()
    assert f"device:{CID}/root" not in rt.state(SID).ledger
    released = [e.data for e in rt.events(SID) if e.type == "ResourcesReleased"]
    assert released[-1] == {"released": [f"device:{CID}/root"], "reason": "not attached"}
    assert stray.path in str(report)
    rt.delete_sandbox(SID)
    assert rt.state(SID).ledger == {}


@pytest.mark.root
def test_a_read_only_image_is_attached_and_mounted_read_only(
        open_rt, dirs: tuple[Path, Path], image: Path) -> None:
    rt = _running(open_rt("namespaces"), child.image_container(str(image), read_only=True))
    assert [d.read_only for d in _ours(dirs[1])] == [True]
    rt.start_container(SID, CID)
    assert rt.wait(SID, CID) != 0, "a write to a read-only image rootfs succeeded"
    rt.stop_container(SID, CID)
    rt.delete_container(SID, CID)
    rt.stop_sandbox(SID)
    rt.delete_sandbox(SID)
    assert not _ours(dirs[1])
    assert "written" not in subprocess.run(["debugfs", "-R", "ls /rootfs", str(image)],
                                           capture_output=True, text=True).stdout
