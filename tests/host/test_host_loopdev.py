"""Loop devices against the real kernel: attach, find by tag, detach, crash leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_fsm.host import loopdev

pytestmark = pytest.mark.root


def _losetup() -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB ext4 image with one file; every device tagged for this test is detached after."""
    content = tmp_path / "content"
    content.mkdir()
    (content / "hello").write_text("from the image\n")
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(4 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(content), str(img)], check=True)
    yield img
    for dev in loopdev.find(loopdev.make_tag(tmp_path.name[-20:], "")):
        loopdev.detach(dev.tag)


def _tag(tmp_path: Path, device: str) -> str:
    return loopdev.make_tag(tmp_path.name[-20:], device)


def test_attach_is_seen_by_the_kernel_and_detach_is_idempotent(
        image: Path, tmp_path: Path) -> None:
    tag = _tag(tmp_path, "d0")
    dev = loopdev.attach(image, tag)
    assert dev.backing_file == str(image)
    assert f"({image})" in _losetup()
    assert [d.path for d in loopdev.find(tag)] == [dev.path]
    assert loopdev.detach(tag) is True
    assert str(image) not in _losetup()
    assert loopdev.detach(tag) is False          # already gone is success


def test_a_tag_is_attached_once(image: Path, tmp_path: Path) -> None:
    tag = _tag(tmp_path, "d0")
    loopdev.attach(image, tag)
    with pytest.raises(loopdev.LoopError, match="already attached"):
        loopdev.attach(image, tag)
    assert _losetup().count(f"({image})") == 1


def test_read_only_device_refuses_writes_and_mounted_device_detaches_at_unmount(
        image: Path, tmp_path: Path) -> None:
    tag = _tag(tmp_path, "ro")
    dev = loopdev.attach(image, tag, read_only=True)
    assert dev.read_only
    with pytest.raises(OSError):
        with open(dev.path, "r+b") as f:
            f.write(b"x")
    point = tmp_path / "mnt"
    point.mkdir()
    subprocess.run(["mount", "-o", "ro", dev.path, str(point)], check=True)
    try:
        assert (point / "hello").read_text() == "from the image\n"
        loopdev.detach(tag)                       # busy: the kernel detaches at last close
    finally:
        subprocess.run(["umount", str(point)], check=True)
    assert str(image) not in _losetup()


def test_device_of_another_owner_is_never_detached(image: Path, tmp_path: Path) -> None:
    mine, theirs = _tag(tmp_path, "a"), _tag(tmp_path, "b")
    loopdev.attach(image, theirs, read_only=True)
    assert loopdev.detach(mine) is False
    assert [d.tag for d in loopdev.find(theirs)] == [theirs]


def test_a_device_left_by_a_killed_process_is_found_by_its_tag(
        image: Path, tmp_path: Path) -> None:
    tag = _tag(tmp_path, "crash")
    code = ("import os, sys; from sandbox_fsm.host import loopdev; "
            f"loopdev.attach({str(image)!r}, {tag!r}); os.kill(os.getpid(), 9)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", code], env=env)
    assert proc.returncode == -signal.SIGKILL
    left = loopdev.find(tag)
    assert [d.backing_file for d in left] == [str(image)]
    assert loopdev.detach(tag) is True
    assert loopdev.find(tag) == []


def test_tag_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 63"):
        loopdev.make_tag("s" * 40, "d" * 40)
