"""What runc gives a container, read from the container and from the host: capabilities
as the spec says, seccomp enforced, cgroup limits applied, a spec too big for argv."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from guestkit import alive, descendants, oci_spec, read_all, wait_until
from hostcheck import comm, command_pids

from agent_io import messages as m
from agent_io.errors import AgentRpcError

pytestmark = pytest.mark.root

CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4,
               "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
               "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
               "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31}
DEFAULT = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
           "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
           "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")


def _mask(names: tuple[str, ...]) -> int:
    return sum(1 << CAP_NUMBERS[n] for n in names)


def _output(agent, cid: str, spec) -> tuple[bytes, bytes, int]:
    agent.client.create_container(cid, spec)
    agent.client.start_container(cid)
    out = read_all(agent.client, cid, cid)
    err = read_all(agent.client, cid, cid, "stderr")
    return out, err, agent.client.wait_process(cid, cid)


def _status_field(text: bytes, name: str) -> int:
    for line in text.decode().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {name} in {text!r}")


def test_capabilities_are_the_specs_or_the_default_set(agent):
    out, _, status = _output(agent, "dflt", oci_spec(["cat", "/proc/self/status"]))
    assert status == 0
    assert _status_field(out, "CapEff") == _mask(DEFAULT)
    assert _status_field(out, "NoNewPrivs") == 1
    few = ("CAP_KILL", "CAP_CHOWN")
    spec = oci_spec(["cat", "/proc/self/status"])
    spec.Process.Capabilities.CopyFrom(m.oci.LinuxCapabilities(
        Bounding=few, Effective=few, Permitted=few))
    out, _, status = _output(agent, "few", spec)
    assert status == 0
    assert _status_field(out, "CapEff") == _status_field(out, "CapBnd") == _mask(few)


def test_a_syscall_the_seccomp_profile_blocks_gets_eperm(agent):
    spec = oci_spec(["sh", "-c", "touch /tmp/ok && echo touched; mkdir /tmp/no"])
    spec.Linux.Seccomp.CopyFrom(m.oci.LinuxSeccomp(
        DefaultAction="SCMP_ACT_ALLOW", Architectures=["SCMP_ARCH_X86_64"],
        Syscalls=[m.oci.LinuxSyscall(Names=["mkdir", "mkdirat"], Action="SCMP_ACT_ERRNO")]))
    out, err, status = _output(agent, "sc", spec)
    assert out == b"touched\n"
    assert status == 1 and b"Operation not permitted" in err, err


def _cgroup_dir(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"))
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            return Path("/sys/fs/cgroup", path.lstrip("/"))
    raise AssertionError(f"pid {pid} has no {controller} cgroup")


def test_a_cpu_quota_set_by_update_is_in_the_containers_cgroup(agent):
    agent.client.create_container("q", oci_spec(["sleep", "600"]))
    agent.client.start_container("q")
    agent.client.update_container("q", m.oci.LinuxResources(
        CPU=m.oci.LinuxCPU(Quota=25000, Period=100000)))
    (pid,) = command_pids(lambda: json.loads(agent.client.list_processes("q", "json")))
    cpu = _cgroup_dir(pid, "cpu")
    if (cpu / "cpu.max").exists():
        assert (cpu / "cpu.max").read_text().split() == ["25000", "100000"]
    else:
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert cpu.name == "q" and cpu.parent.name.startswith("sbx-")   # the guest's own parent
    agent.client.remove_container("q")
    assert not cpu.exists()


def test_a_spec_larger_than_argv_allows(agent):
    """Two 70 KB variables: the spec reaches runc as a file, never as one argv string."""
    big = ("A=" + "a" * 70_000, "B=" + "b" * 70_000, "PATH=/bin")
    out, _, status = _output(agent, "big", oci_spec(
        ["sh", "-c", "echo ${#A} ${#B}"], env=big))
    assert (out, status) == (b"70000 70000\n", 0)


@pytest.mark.parametrize("namespaces", [False, True], ids=["process", "namespaces"])
def test_a_killed_agent_leaves_no_container_cgroup_or_state(start_agent, namespaces: bool):
    """runc's containers outlive the process that made them: the agent's janitor (or the
    agent's PID namespace) ends them, and the janitor removes the guest's cgroups."""
    agent = start_agent(namespaces=namespaces)
    agent.client.create_container("k", oci_spec(["sleep", "600"]))
    agent.client.start_container("k")
    wait_until(lambda: any(comm(p) == "sleep" for p, _ in descendants(agent.proc.pid)),
               "the container's sleep, seen from the host")
    left = descendants(agent.proc.pid)
    sleep = next(p for p, _ in left if comm(p) == "sleep")
    parent = _cgroup_dir(sleep, "pids").parent
    assert parent.name.startswith("sbx-") and (agent.guest_dir / ".agent").is_dir()
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    wait_until(lambda: not any(alive(*p) for p in left), "every container process gone")
    wait_until(lambda: not parent.exists(), f"{parent} removed")
    wait_until(lambda: not (agent.guest_dir / ".agent").exists(), "runc's state removed")


def test_a_create_runc_refuses_leaves_nothing_and_the_id_free(agent):
    """runc refuses a sysctl of the host's (not in a namespace of the container's): the
    error is runc's, one line, and whatever it made is undone."""
    spec = oci_spec(["true"])
    spec.Linux.Sysctl["vm.dirty_expire_centisecs"] = "1"
    with pytest.raises(AgentRpcError) as err:
        agent.client.create_container("s", spec)
    assert err.value.code == "INVALID_ARGUMENT" and "sysctl" in err.value.details
    assert "\n" not in err.value.details
    assert not (agent.guest_dir / ".agent" / "runc" / "s").exists()
    assert not (agent.guest_dir / ".agent" / "bundles" / "s").exists()
    out, _, status = _output(agent, "s", oci_spec(["echo", "again"]))
    assert (out, status) == (b"again\n", 0)
