"""The guest image builder: what goes in (and what does not), order of modules, caching."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_fsm.drivers import guestimage
from sandbox_fsm.drivers.guestimage import build, kmods, pyruntime
from sandbox_fsm.drivers.guestimage.cpio import CpioWriter


def _listing(image: Path) -> set[str]:
    """The archive's names as cpio(1) reads them: an independent check of our writer."""
    out = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(image, "rb"),
                         capture_output=True, check=True).stdout.decode()
    return set(out.split())


def test_modules_load_dependencies_first() -> None:
    order = [os.path.basename(p) for p in
             kmods.load_order(guestimage.find_kernel().modules_dir)]
    for before, after in (("virtio_ring.ko", "virtio.ko"), ("virtio.ko", "virtio_pci.ko"),
                          ("virtio_ring.ko", "virtio_console.ko"), ("netfs.ko", "9p.ko"),
                          ("fscache.ko", "9p.ko"), ("9pnet.ko", "9pnet_virtio.ko"),
                          ("9pnet_virtio.ko", "9p.ko")):
        assert order.index(before) < order.index(after), order
    assert len(order) == len(set(order))


def test_unknown_module_is_refused(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n")
    assert kmods.load_order(tmp_path, ("a",)) == ["kernel/b.ko", "kernel/a.ko"]
    with pytest.raises(kmods.ModuleNotFound, match="'nope'"):
        kmods.load_order(tmp_path, ("nope",))


def test_image_holds_the_agent_runtime_and_nothing_of_the_host_root(
        guest_image: guestimage.GuestImage) -> None:
    names = _listing(guest_image.path)
    release = guest_image.kernel.release
    site = pyruntime.SITE_DIR.lstrip("/")
    for wanted in ("init", "dev/console", "bin/busybox", "bin/sh", "usr/sbin/runc",
                   "usr/bin/python3", f"{site}/agent_io/guest/__main__.py",
                   f"{site}/agent_io/guest/__pycache__/vmport.{sys.implementation.cache_tag}.pyc",
                   f"{site}/grpc/__init__.py", f"{site}/google/protobuf/__init__.py",
                   f"lib/modules/{release}/kernel/drivers/char/virtio_console.ko",
                   f"lib/modules/{release}/kernel/fs/9p/9p.ko", "etc/sbx/modules"):
        assert wanted in names, wanted
    # only the agent's dependencies: not the runtime's own (lmdb, transitions, msgpack),
    # and nothing else of the host (no shadow file, no Debian python packages)
    for unwanted in ("lmdb", "transitions", "msgpack", "sandbox_fsm", "eventstore"):
        assert not any(n.startswith(f"{site}/{unwanted}") for n in names), unwanted
    assert "etc/shadow" not in names
    assert not any("dist-packages" in n or "/test/" in n for n in names)


def test_built_once_then_cached_and_rebuilt_when_an_input_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = tmp_path / "pkgs" / "sbxprobe"
    probe.mkdir(parents=True)
    (probe / "__init__.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setattr(pyruntime, "GUEST_PACKAGES", (*pyruntime.GUEST_PACKAGES, "sbxprobe"))
    cache = tmp_path / "cache"
    first = guestimage.ensure(cache)
    stamp = first.path.stat().st_mtime_ns
    again = guestimage.ensure(cache)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    (probe / "__init__.py").write_text("VALUE = 2\n")
    changed = guestimage.ensure(cache)
    assert changed.key != first.key
    assert not first.path.exists()  # the older image for this kernel is pruned
    assert f"{pyruntime.SITE_DIR.lstrip('/')}/sbxprobe/__init__.py" in _listing(changed.path)


def test_cpio_writer_round_trips_through_cpio(tmp_path: Path) -> None:
    archive = tmp_path / "a.cpio"
    with open(archive, "wb") as out:
        w = CpioWriter(out)
        w.directory("d", 0o750)
        w.file("d/f", b"hello\n", 0o640)
        w.symlink("d/l", "f")
        w.close()
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], stdin=open(archive, "rb"), cwd=dest, check=True)
    assert (dest / "d/f").read_bytes() == b"hello\n"
    assert (dest / "d/f").stat().st_mode & 0o777 == 0o640
    assert os.readlink(dest / "d/l") == "f"


def test_cli_builds_and_refuses_a_bad_kernel(guest_image: guestimage.GuestImage) -> None:
    sbx = [str(Path(sys.executable).parent / "sbx")]
    cache = str(guest_image.path.parent)
    out = subprocess.run([*sbx, "guest-image", "build", "--cache-dir", cache, "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["path"] == str(guest_image.path)
    bad = subprocess.run([*sbx, "guest-image", "build", "--cache-dir", cache,
                          "--kernel", "/etc/passwd"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "vmlinuz-<release>" in bad.stderr


def test_missing_kernel_dir_is_an_image_error() -> None:
    with pytest.raises(build.ImageError):
        guestimage.find_kernel("/nonexistent/vmlinuz-0.0")
