"""CopyFile, storages, resolv.conf and the Kata shared rootfs path, through the real agent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from guestkit import oci_spec, read_all

from agent_io import messages as m
from agent_io.client import AgentClient
from agent_io.errors import AgentRpcError

SHARED = "/run/kata-containers/shared/containers"
MIB = 1 << 20


@pytest.mark.parametrize("size", [0, 1, MIB, 3 * MIB + MIB // 2])
def test_copy_file_sizes(agent, tmp_path: Path, size: int):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))
    src.chmod(0o640)
    agent.client.copy_file(src, "/etc/deep/dir/file.bin")
    dst = agent.guest_dir / "etc/deep/dir/file.bin"
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_mode & 0o7777 == 0o640
    assert not list(dst.parent.glob(".*copy-tmp"))


def test_copy_file_escapes_refused(agent, tmp_path: Path):
    src = tmp_path / "x"
    src.write_bytes(b"x")
    (agent.guest_dir / "link").symlink_to(tmp_path)
    for dst in ("/../outside", "/a/../../outside", "/link/escaped", "relative"):
        with pytest.raises(AgentRpcError) as err:
            agent.client.copy_file(src, dst)
        assert err.value.code == "INVALID_ARGUMENT" and "CopyFile" in err.value.details
    assert not (tmp_path / "escaped").exists() and not (agent.guest_dir.parent / "outside").exists()


def test_sandbox_storages_and_resolv_conf(agent):
    shm = m.agent.Storage(driver="ephemeral", source="shm", fstype="tmpfs",
                          options=["noexec", "nosuid", "nodev", "mode=1777", "size=65536k"],
                          mount_point="/run/kata-containers/sandbox/shm")
    local = m.agent.Storage(driver="local", source="local", fstype="local",
                            options=["mode=0777"], mount_point="/run/local/vol")
    share = m.agent.Storage(driver="virtio-fs", source="kataShared", fstype="virtiofs",
                            mount_point=SHARED)
    agent.client.create_sandbox(hostname="sbx", dns=["nameserver 10.0.0.1", "search x"],
                                storages=[shm, local, share], sandbox_id="sb")
    assert (agent.guest_dir / "etc/resolv.conf").read_text() == "nameserver 10.0.0.1\nsearch x\n"
    assert (agent.guest_dir / "run/kata-containers/sandbox/shm").is_dir()  # not root+ns: a dir
    assert (agent.guest_dir / "run/local/vol").stat().st_mode & 0o777 == 0o777
    with pytest.raises(AgentRpcError) as err:
        agent.client.create_sandbox(hostname="again")
    assert err.value.code == "ALREADY_EXISTS"
    bad = m.agent.Storage(driver="local", mount_point="/../../etc")
    with pytest.raises(AgentRpcError) as err:
        agent.client.create_container("c", oci_spec(["true"]), storages=[bad])
    assert err.value.code == "INVALID_ARGUMENT"
    agent.client.destroy_sandbox()
    agent.client.create_sandbox(hostname="sbx")  # destroyed: may be created again


def make_rootfs(rootfs: Path) -> None:
    """A real root filesystem: the host's /usr bound read-only, plus merged-usr links."""
    (rootfs / "usr").mkdir(parents=True)
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path("/", name).is_symlink():
            (rootfs / name).symlink_to(os.readlink(Path("/", name)))
    (rootfs / "tmp").mkdir()
    (rootfs / "marker").write_text("inside the rootfs\n")
    subprocess.run(["mount", "--bind", "-o", "ro", "/usr", str(rootfs / "usr")], check=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.root
def test_container_in_shared_rootfs_chroots(agent):
    if not Path("/bin").is_symlink():
        pytest.skip("needs a merged-/usr host to assemble a rootfs from /usr")
    rootfs = agent.shared_dir / "c1" / "rootfs"
    make_rootfs(rootfs)
    try:
        run_in_rootfs(agent.client)
    finally:
        unmount(rootfs / "usr")


def run_in_rootfs(client: AgentClient) -> None:
    """The runtime's path: Check, CreateSandbox with the shared volume, create, start, read."""
    assert client.check() == m.health.HealthCheckResponse.SERVING
    share = m.agent.Storage(driver="9p", source="kataShared", fstype="9p", mount_point=SHARED)
    client.create_sandbox(hostname="sbx", storages=[share])
    client.create_container("c1", oci_spec(["sh", "-c", "cat /marker; id -u; pwd"],
                                           root=f"{SHARED}/c1/rootfs", cwd="/tmp"))
    client.start_container("c1")
    assert read_all(client, "c1", "c1") == b"inside the rootfs\n0\n/tmp\n"
    assert client.wait_process("c1", "c1") == 0
    client.remove_container("c1")
    client.destroy_sandbox()


def test_a_rootfs_that_cannot_run_the_command_is_refused(agent):
    """Never a silent fall back to another root: missing, empty, or without the command."""
    (agent.shared_dir / "c2" / "rootfs").mkdir(parents=True)
    (agent.shared_dir / "c3" / "rootfs" / "etc").mkdir(parents=True)
    for cid, root, why in (("c2", f"{SHARED}/c2/rootfs", "is empty"),
                           ("c3", f"{SHARED}/c3/rootfs", "has no executable 'cat'"),
                           ("c4", f"{SHARED}/c4/rootfs", "is not a directory"),
                           ("c5", "", "no root.path")):
        with pytest.raises(AgentRpcError) as err:
            agent.client.create_container(cid, oci_spec(["cat", "/proc/self/status"],
                                                        root=root))
        assert err.value.code == "INVALID_ARGUMENT" and why in err.value.details, cid
    assert not (agent.guest_dir / ".agent" / "runc" / "c2").exists()
