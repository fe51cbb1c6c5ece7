"""--namespaces (root): the agent and its processes live in their own mount/PID/UTS/IPC
namespaces; the outer pid is the handle for SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from guestkit import alive, descendants, mounts_under, oci_spec, read_all, wait_until
from test_guest_files import make_rootfs, run_in_rootfs, unmount

from agent_io import messages as m

pytestmark = pytest.mark.root


def _run(agent, cid: str, args: list[str], mounts: tuple = ()) -> bytes:
    spec = oci_spec(args)
    spec.Mounts.extend(mounts)
    agent.client.create_container(cid, spec)
    agent.client.start_container(cid)
    out = read_all(agent.client, cid, cid)
    assert agent.client.wait_process(cid, cid) == 0
    return out


def test_processes_see_only_the_namespace(start_agent):
    agent = start_agent(namespaces=True)
    agent.client.create_sandbox(hostname="ns-box", storages=[m.agent.Storage(
        driver="ephemeral", fstype="tmpfs", source="shm", options=["size=1m"],
        mount_point="/run/kata-containers/sandbox/shm")])
    assert _run(agent, "h", ["hostname"]) == b"ns-box\n"
    assert socket.gethostname() != "ns-box"
    pids = sorted(int(p) for p in _run(agent, "ls", ["ls", "/proc"]).split() if p.isdigit())
    assert pids[0] == 1 and len(pids) == 2  # its own PID namespace: its init and this ls
    ps = _run(agent, "ps", ["ps", "-e", "-o", "pid="]).split()
    assert len(ps) == 2 and ps[0] == b"1"
    # The tmpfs is mounted inside the agent's namespace only: the host sees a plain
    # directory; containers that bind it share it.
    assert mounts_under(agent.guest_dir) == []
    shm = m.oci.Mount(destination="/dev/shm", type="bind", options=["rbind", "rw"],
                      source="/run/kata-containers/sandbox/shm")
    _run(agent, "w", ["sh", "-c", "echo shared > /dev/shm/x"], mounts=(shm,))
    assert _run(agent, "r", ["cat", "/dev/shm/x"], mounts=(shm,)) == b"shared\n"
    assert not (agent.guest_dir / "run/kata-containers/sandbox/shm/x").exists()
    agent.client.destroy_sandbox()


def test_rootfs_mounted_after_start_propagates_in(start_agent, tmp_path: Path):
    """The runtime's path: the shared dir is a shared mount; the container rootfs is bound
    under it after the agent started, and must appear inside the agent's mount namespace."""
    if not Path("/bin").is_symlink():
        pytest.skip("needs a merged-/usr host to assemble a rootfs from /usr")
    shared = tmp_path / "a" / "shared"
    shared.mkdir(parents=True, mode=0o700)
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        agent = start_agent(namespaces=True)
        rootfs = shared / "c1" / "rootfs"
        make_rootfs(rootfs)
        try:
            run_in_rootfs(agent.client)
        finally:
            unmount(rootfs / "usr")
    finally:
        unmount(shared)


def test_sigterm_of_outer_pid_is_forwarded(start_agent):
    agent = start_agent(namespaces=True)
    agent.client.create_container("s", oci_spec(["sleep", "600"]))
    agent.client.start_container("s")
    left = descendants(agent.proc.pid)
    assert json.loads(agent.client.list_processes("s", "json")) != []
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(30) == 0
    wait_until(lambda: not any(alive(*p) for p in left), "namespace processes gone")


def test_sigkill_of_outer_pid_takes_down_the_namespace(start_agent):
    agent = start_agent(namespaces=True)
    agent.client.create_container("s", oci_spec(["sh", "-c", "sleep 600 & sleep 600"]))
    agent.client.start_container("s")
    wait_until(lambda: len(descendants(agent.proc.pid)) >= 4, "inner agent, sh and two sleeps")
    left = descendants(agent.proc.pid)
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    wait_until(lambda: not any(alive(*p) for p in left), "every namespace process gone")
