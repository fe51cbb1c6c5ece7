"""Sandbox paths, id validation, private dirs and mount-aware removal on a real filesystem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_fsm.host.layout import (
    SUN_PATH_MAX,
    InvalidId,
    SandboxLayout,
    StillMounted,
    check_socket_dir,
    ensure_private_dir,
    remove_tree,
    validate_id,
)
from sandbox_fsm.host.mounts import UnsafePath, bind_mount, mounts_under, unmount


@pytest.mark.parametrize("bad", ["", ".", "..", "-x", "a/b", "a b", "x" * 129, "é", None, 7])
def test_invalid_ids_name_kind_value_and_rule(bad: object) -> None:
    with pytest.raises(InvalidId) as info:
        validate_id(bad, "container id")
    message = str(info.value)
    assert "container id" in message and repr(bad) in message and "A-Za-z0-9" in message


def test_layout_paths(tmp_path: Path) -> None:
    lay = SandboxLayout(tmp_path, "sb-1")
    assert lay.root == tmp_path / "sandboxes" / "sb-1"
    assert lay.agent_socket.parent == lay.sock_dir == lay.proxy_socket.parent
    assert lay.sock_dir.parent == tmp_path / "sock"
    assert lay.rootfs_target("c1") == lay.mounts / "c1" / "rootfs"
    with pytest.raises(InvalidId, match="sandbox id '../x'"):
        SandboxLayout(tmp_path, "../x")
    with pytest.raises(InvalidId, match="container id"):
        lay.container_dir("..")


@given(st.text(max_size=300))
def test_volume_target_never_escapes_mounts(destination: str) -> None:
    lay = SandboxLayout("/run/sbx", "sb")
    a = lay.volume_target("c1", destination)
    b = lay.volume_target("c1", destination)
    assert a.parent == lay.mounts and a != b
    assert a.name.startswith("c1-") and len(a.name.encode()) <= 255
    assert a.name not in (".", "..") and "/" not in a.name


def test_volume_target_keeps_the_basename(tmp_path: Path) -> None:
    name = SandboxLayout(tmp_path, "sb").volume_target("c1", "/var/lib/data/").name
    prefix, rand, base = name.split("-", 2)
    assert (prefix, len(rand), base) == ("c1", 8, "data")


@pytest.mark.root  # chown to a foreign uid
def test_ensure_private_dir_creates_0700_and_refuses_unsafe(tmp_path: Path) -> None:
    made = ensure_private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700
    ensure_private_dir(made)  # idempotent

    (tmp_path / "link").symlink_to(made)
    with pytest.raises(UnsafePath, match="symlink"):
        ensure_private_dir(tmp_path / "link")

    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(UnsafePath, match="world-writable without the sticky bit"):
        ensure_private_dir(open_dir / "x")
    os.chmod(open_dir, 0o1777)
    ensure_private_dir(open_dir / "x")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 12345, 12345)
    with pytest.raises(UnsafePath, match="owned by uid 12345"):
        ensure_private_dir(foreign)


def test_check_socket_dir(tmp_path: Path) -> None:
    sock = ensure_private_dir(tmp_path / "sock")
    check_socket_dir(sock)
    os.chmod(sock, 0o1777)
    with pytest.raises(UnsafePath, match="writable by group or others"):
        check_socket_dir(sock)


@pytest.mark.root
def test_remove_tree_refuses_mounts_and_never_follows_symlinks(mount_dir: Path) -> None:
    precious = mount_dir / "precious"
    precious.mkdir()
    (precious / "keep").write_text("host data")
    lay = SandboxLayout(mount_dir / "run", "sb")
    target = lay.rootfs_target("c1")
    target.mkdir(parents=True)
    (lay.root / "escape").symlink_to(precious)
    bind_mount(precious, target, within=lay.mounts)

    with pytest.raises(StillMounted, match="rootfs"):
        remove_tree(lay.root)
    assert (precious / "keep").exists()

    unmount(target)
    assert remove_tree(lay.root) is True
    assert not lay.root.exists()
    assert (precious / "keep").read_text() == "host data"
    assert remove_tree(lay.root) is False
    assert mounts_under(mount_dir) == []

    (mount_dir / "dirlink").symlink_to(precious)
    with pytest.raises(UnsafePath, match="symlink"):
        remove_tree(mount_dir / "dirlink")


@pytest.mark.parametrize("run_dir_len", [1, 16, 40, 80, 200])
@pytest.mark.parametrize("id_len", [1, 64, 100, 128])
def test_socket_paths_fit_whatever_the_id_and_runtime_dir(run_dir_len: int,
                                                           id_len: int) -> None:
    run_dir = Path("/" + "r" * run_dir_len)
    lay = SandboxLayout(run_dir, "i" * id_len)
    for sock in (lay.agent_socket, lay.proxy_socket):
        assert len(os.fsencode(sock)) <= SUN_PATH_MAX
    other = SandboxLayout(run_dir, "i" * (id_len - 1) + "j")
    assert other.sock_dir != lay.sock_dir
    assert SandboxLayout(Path(str(run_dir) + "x"), "i" * id_len).sock_dir != lay.sock_dir
    if run_dir_len <= 40:
        assert lay.sock_dir.parent == run_dir / "sock"
