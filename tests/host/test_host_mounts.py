"""mount(2) wrappers against the real kernel: binds, propagation, unmount, mountinfo parsing."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sandbox_fsm.host.mounts import (
    MountError,
    UnsafePath,
    bind_mount,
    is_mounted,
    make_shared,
    mounts_under,
    share_dir,
    tmpfs_mount,
    unmount,
    unshare_dir,
)

pytestmark = pytest.mark.root


def _dirs(base: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        (base / name).mkdir(parents=True)
        out.append(base / name)
    return out


def test_bind_mount_shows_source_and_unmount_is_idempotent(mount_dir: Path) -> None:
    src, dst = _dirs(mount_dir, "src", "dst")
    (src / "file").write_text("hello")
    bind_mount(src, dst)
    assert is_mounted(dst)
    assert (dst / "file").read_text() == "hello"
    assert unmount(dst) is True
    assert not is_mounted(dst)
    assert unmount(dst) is False
    assert unmount(mount_dir / "missing") is False


def test_unmount_removes_stacked_mounts(mount_dir: Path) -> None:
    a, b, dst = _dirs(mount_dir, "a", "b", "dst")
    bind_mount(a, dst)
    bind_mount(b, dst)
    assert len(mounts_under(dst)) == 2
    assert unmount(dst) is True
    assert mounts_under(mount_dir) == []


def test_readonly_bind_refuses_writes(mount_dir: Path) -> None:
    src, dst = _dirs(mount_dir, "src", "dst")
    bind_mount(src, dst, readonly=True, propagation="private")
    with pytest.raises(OSError) as info:
        (dst / "x").write_text("no")
    assert info.value.errno == errno.EROFS
    (info_row,) = mounts_under(dst)
    assert info_row.readonly
    (src / "y").write_text("source stays writable")


def test_symlinked_target_is_refused(mount_dir: Path) -> None:
    src, real = _dirs(mount_dir, "src", "real")
    (mount_dir / "link").symlink_to(real)
    with pytest.raises(UnsafePath, match="symlink"):
        bind_mount(src, mount_dir / "link")
    (mount_dir / "parent-link").symlink_to(mount_dir)
    with pytest.raises(UnsafePath, match="symlink"):
        bind_mount(src, mount_dir / "parent-link" / "real", within=mount_dir)
    with pytest.raises(UnsafePath, match="escapes"):
        bind_mount(src, mount_dir / "real", within=mount_dir / "src")
    assert mounts_under(mount_dir) == []


def test_missing_target_and_bad_source_name_the_paths(mount_dir: Path) -> None:
    (src,) = _dirs(mount_dir, "src")
    with pytest.raises(MountError, match="missing"):
        bind_mount(src, mount_dir / "missing")
    with pytest.raises(MountError) as info:
        bind_mount(mount_dir / "no-such-source", src)
    assert info.value.errno == errno.ENOENT
    assert "no-such-source" in str(info.value) and "bind mount" in str(info.value)


def test_mountinfo_decodes_escaped_paths(mount_dir: Path) -> None:
    src, dst = _dirs(mount_dir, "src", "with space\tand tab")
    bind_mount(src, dst)
    (row,) = mounts_under(dst)
    assert row.mount_point == str(dst)
    assert is_mounted(dst)


def test_tmpfs_mount_with_size_and_mode(mount_dir: Path) -> None:
    (shm,) = _dirs(mount_dir, "shm")
    tmpfs_mount(shm, size="1m", mode=0o1777, options=("nosuid", "nodev"))
    (row,) = mounts_under(shm)
    assert row.fstype == "tmpfs"
    assert "nosuid" in row.options and "nodev" in row.options
    assert os.stat(shm).st_mode & 0o7777 == 0o1777
    assert unmount(shm)


def test_make_shared_binds_a_plain_dir_onto_itself(mount_dir: Path) -> None:
    (d,) = _dirs(mount_dir, "d")
    make_shared(d)
    make_shared(d)
    (row,) = mounts_under(d)
    assert row.is_shared


def test_share_dir_propagates_later_mounts_read_only(mount_dir: Path) -> None:
    mounts, shared, rootfs_src = _dirs(mount_dir, "mounts", "shared", "image/rootfs")
    (rootfs_src / "etc-hostname").write_text("guest")
    share_dir(mounts, shared)
    share_dir(mounts, shared)  # idempotent
    assert next(m for m in mounts_under(shared) if m.mount_point == str(shared)).is_slave

    target = mounts / "c1" / "rootfs"
    target.mkdir(parents=True)
    bind_mount(rootfs_src, target, within=mounts)
    assert (shared / "c1" / "rootfs" / "etc-hostname").read_text() == "guest"
    with pytest.raises(OSError) as info:
        (shared / "new").write_text("x")
    assert info.value.errno == errno.EROFS

    # unmounting under mounts/ propagates to shared/ as well
    assert unmount(target)
    assert not (shared / "c1" / "rootfs" / "etc-hostname").exists()

    unshare_dir(mounts, shared)
    unshare_dir(mounts, shared)  # idempotent
    assert mounts_under(mount_dir) == []


def test_read_only_volume_stays_read_only_in_shared(mount_dir: Path) -> None:
    """A bind remounted read-only after attaching would leave a writable copy in shared/."""
    mounts, shared, vol_src = _dirs(mount_dir, "mounts", "shared", "volume")
    (vol_src / "inner").mkdir()
    bind_mount(vol_src / "inner", vol_src / "inner")  # a nested mount inside the volume
    share_dir(mounts, shared)
    vol = mounts / "c1-vol"
    vol.mkdir()
    bind_mount(vol_src, vol, readonly=True, recursive=True, within=mounts)
    for path in (vol / "x", shared / "c1-vol" / "x", shared / "c1-vol" / "inner" / "x"):
        with pytest.raises(OSError) as info:
            path.write_text("must not land on the host")
        assert info.value.errno == errno.EROFS, path
    assert list(vol_src.iterdir()) == [vol_src / "inner"]
    unmount(vol)
    unshare_dir(mounts, shared)
    unmount(vol_src / "inner")
    assert mounts_under(mount_dir) == []


def test_unknown_propagation_is_a_clear_error(mount_dir: Path) -> None:
    src, dst = _dirs(mount_dir, "src", "dst")
    with pytest.raises(ValueError, match="'sideways'"):
        bind_mount(src, dst, propagation="sideways")
    assert mounts_under(mount_dir) == []
