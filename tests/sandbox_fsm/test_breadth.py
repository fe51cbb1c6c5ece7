"""The seed's breadth through the lifecycle engine, against the real reference guest agent:
DNS, network, storages, kernel modules and parameters at start; container volumes the
guest backs itself; each new step's failure rolled back with nothing left behind."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostcheck import busybox_tree, make_config

from agent_io.faults import ENV_VAR
from sandbox_fsm import Runtime
from sandbox_fsm.errors import InvalidRequest, OperationFailed
from sandbox_fsm.host import find_by_cmdline, mounts_under
from sandbox_fsm.saga import CRASH_ENV
from sandbox_fsm.spec import ContainerConfig, Mount, SandboxConfig

SID = "sb"
NETWORK = {
    "interfaces": [{"name": "eth0", "hw_addr": "02:42:ac:11:00:02", "mtu": 1500,
                    "addresses": ["10.88.0.2/16", "fd00::2/64"]}],
    "routes": [{"dest": "10.88.0.0/16", "device": "eth0", "scope": 253},
               {"gateway": "10.88.0.1", "device": "eth0"}],
    "neighbors": [{"ip": "10.88.0.1", "lladdr": "02:42:ac:11:00:01", "device": "eth0"}],
}
SHM_SIZE = 4 << 20


def breadth_config(driver: str, **agent: object) -> object:
    base = make_config(driver)
    return dataclasses.replace(
        base,
        hypervisor=dataclasses.replace(base.hypervisor, shm_size=SHM_SIZE,
                                       kernel_params="quiet panic=1"),
        agent=dataclasses.replace(base.agent, debug=True, container_pipe_size=4096,
                                  kernel_modules=("dummy numdummies=2", "", "veth"),
                                  **agent))




def types(rt: Runtime) -> list[str]:
    return [e.type for e in rt.events(SID)]


def step_args(rt: Runtime, step: str) -> dict:
    return next(e.data["args"] for e in rt.events(SID)
                if e.type == "StepStarted" and e.data["step"] == step)


def guest_mounts(rt: Runtime) -> str:
    """The guest's mount table (its own mount namespace under the namespaces driver)."""
    return Path(f"/proc/{rt.state(SID).guest['pid']}/mountinfo").read_text()


def teardown(rt: Runtime) -> None:
    rt.delete_sandbox(SID, force=True)
    assert rt.state(SID).state == "deleted" and not rt.state(SID).ledger


@pytest.mark.root
def test_dns_network_shm_modules_and_kernel_params_reach_the_guest(open_rt, driver, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.88.0.1\nsearch example.test\n")
    oci = {"mounts": [{"destination": "/etc/resolv.conf", "source": str(resolv),
                       "type": "bind", "options": ["rbind", "ro"]}]}
    rt = open_rt(breadth_config(driver, trace=True, trace_mode="static"))
    rt.create_sandbox(SandboxConfig(SID, oci=oci, network=NETWORK))
    rt.start_sandbox(SID)
    guest = rt.layout(SID).guest_dir

    assert (guest / "etc/resolv.conf").read_text() == resolv.read_text()
    assert [(i.name, i.mtu, [f"{a.address}/{a.prefix_len}" for a in i.addresses])
            for i in rt.list_interfaces(SID)] == [("eth0", 1500, ["10.88.0.2/16", "fd00::2/64"])]
    assert [(r.dest, r.gateway) for r in rt.list_routes(SID)] == [
        ("10.88.0.0/16", ""), ("", "10.88.0.1")]
    assert (guest / "proc/cmdline").read_text().split() == [
        "quiet", "panic=1", "agent.log=debug", "agent.trace=isolated",
        "agent.container_pipe_size=4096"]
    assert (guest / "run/kata-containers/sandbox/shm").is_dir()
    if driver == "namespaces":  # the guest may mount: shm is a tmpfs of the configured size
        shm = [ln for ln in guest_mounts(rt).splitlines()
               if ln.split()[4].endswith("/run/kata-containers/sandbox/shm")]
        assert len(shm) == 1 and " tmpfs " in shm[0] and f"size={SHM_SIZE // 1024}k" in shm[0]

    created = next(e.data for e in rt.events(SID) if e.type == "GuestSandboxCreated")
    assert created["storages"] == ["9p", "ephemeral"]
    args = step_args(rt, "create_sandbox_in_guest")
    assert args["dns"] == ["nameserver 10.88.0.1", "search example.test"]
    assert args["kernel_modules"] == ["dummy numdummies=2", "", "veth"]
    vm = step_args(rt, "start_vm")
    assert vm["disable_vm_shutdown"] is True   # static tracing
    assert [d["type"] for d in vm["devices"]] == ["AgentSocketDevice", "SharedFsDevice"]
    configured = next(e.data for e in rt.events(SID) if e.type == "NetworkConfigured")
    assert (configured["interfaces"], configured["routes"], configured["neighbors"]) == (
        ["eth0"], 2, 1)
    assert "TracingStarted" not in types(rt)   # static tracing: no StartTracing
    teardown(rt)


def test_dynamic_tracing_starts_and_stops_with_the_sandbox(open_rt):
    rt = open_rt(breadth_config("process", trace=True))
    rt.create_sandbox(SandboxConfig(SID))
    rt.start_sandbox(SID)
    assert "agent.trace" not in (rt.layout(SID).guest_dir / "proc/cmdline").read_text()
    assert types(rt).count("TracingStarted") == 1
    rt.stop_sandbox(SID)
    stop = [e.data["step"] for e in rt.events(SID) if e.type == "StepStarted"][-4:]
    assert stop == ["destroy_sandbox_in_guest", "stop_tracing", "stop_proxy", "stop_vm"]
    teardown(rt)


@pytest.mark.root
def test_container_sees_ephemeral_local_shared_and_shm_volumes(open_rt, tmp_path):
    rootfs, volume = tmp_path / "rootfs", tmp_path / "volume"
    busybox_tree(rootfs)
    volume.mkdir()
    (volume / "f").write_text("from the host\n")
    rt = open_rt(breadth_config("namespaces"))
    rt.create_sandbox(SandboxConfig(SID))
    rt.start_sandbox(SID)
    # the sandbox's first container has the sandbox's id: local volumes live in its rootfs
    rt.create_container(SID, ContainerConfig(
        SID, args=("sh", "-c", "cat /data/f && echo e > /cache/e && cat /cache/e && "
                   "echo l > /loc/l && cat /loc/l && echo s > /dev/shm/s && cat /dev/shm/s"),
        rootfs=str(rootfs), mounts=(
            Mount(str(volume), "/data", readonly=True),
            Mount("/pods/volumes/cache", "/cache", type="ephemeral"),
            Mount("/pods/volumes/loc", "/loc", type="local"),
            Mount("/dev/shm", "/dev/shm"))))
    created = next(e.data for e in rt.events(SID) if e.type == "ContainerCreated")
    assert created["storages"] == ["ephemeral", "local"]
    assert [e.data["args"]["destination"] for e in rt.events(SID) if e.type == "StepStarted"
            and e.data["step"] == "mount_volume"] == ["/data"]   # only the shared bind
    rt.start_container(SID, SID)
    out = b""
    while chunk := rt.read_stdout(SID, SID):
        out += chunk
    assert rt.wait(SID, SID) == 0, rt.read_stderr(SID, SID)
    assert out == b"from the host\ne\nl\ns\n"
    # the local volume is a directory of the rootfs; the ephemeral one a tmpfs of the guest
    assert (rootfs / "local/loc/l").read_text() == "l\n"
    ephemeral = rt.layout(SID).guest_dir / "run/kata-containers/sandbox/ephemeral/cache"
    assert ephemeral.is_dir() and not any(ephemeral.iterdir())
    rt.stop_container(SID, SID)
    rt.delete_container(SID, SID)
    teardown(rt)


def test_block_devices_and_constraints_reach_create_container(open_rt):
    rt = open_rt(make_config("process"))   # [runtime] enable_agent_pidns = false
    rt.create_sandbox(SandboxConfig(SID))
    rt.start_sandbox(SID)
    oci = {"hooks": {"prestart": [{"path": "/bin/true"}]},
           "linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"},
                                    {"type": "network", "path": "/x"}, {"type": "mount"}],
                     "cgroupsPath": "system.slice:docker:abc",
                     "resources": {"cpu": {"shares": 512, "cpus": "0-1"}}}}
    rt.create_container(SID, ContainerConfig(
        "c1", args=("true",), env={"KATA_AGENT_PIDNS": "true"}, oci=oci,
        mounts=(Mount("/var/lib/x", "/blk", readonly=True),),
        rootfs_device={"id": "root", "scsi_addr": "0:0", "fstype": "xfs"},
        devices=({"id": "d1", "scsi_addr": "0:1", "container_path": "/dev/sdb"},),
        block_volumes=({"id": "v1", "scsi_addr": "0:2", "destination": "/blk"},)))
    args = step_args(rt, "create_container_in_guest")
    spec = args["spec"]
    assert "hooks" not in spec and spec["linux"]["cgroupsPath"] == "/docker/abc"
    assert spec["linux"]["namespaces"] == [{"type": "mount"}]
    assert spec["linux"]["resources"]["cpu"] == {"shares": 512}
    assert [(s["driver"], s["source"]) for s in args["storages"]] == [
        ("scsi", "0:0"), ("scsi", "0:2")]
    assert args["storages"][0]["options"] == ["nouuid"]
    # a raw block volume keeps its mount's type and options, `ro` included (the seed's rule)
    assert (args["storages"][1]["fstype"], args["storages"][1]["options"]) == (
        "bind", ["rbind", "ro"])
    assert [d["container_path"] for d in args["devices"]] == ["/dev/sdb", "/blk"]
    created = next(e.data for e in rt.events(SID) if e.type == "ContainerCreated")
    assert created["sandbox_pidns"] is True and created["agent_pidns"] is False
    assert "enable_agent_pidns = false" in created["warnings"][0]
    assert "mount_volume" not in [e.data.get("step") for e in rt.events(SID)]  # a block volume
    teardown(rt)


def test_rules_refuse_a_bad_request_before_the_host_is_touched(open_rt):
    rt = open_rt(make_config("process"))
    with pytest.raises(InvalidRequest, match=r"interfaces\[0\].addresses\[0\]"):
        rt.create_sandbox(SandboxConfig(SID, network={"interfaces": [
            {"name": "eth0", "addresses": ["10.0.0.300/24"]}]}))
    rt.create_sandbox(SandboxConfig(SID))
    rt.start_sandbox(SID)
    before = len(rt.events(SID))
    with pytest.raises(InvalidRequest, match="no pagesize option"):
        rt.create_container(SID, ContainerConfig("c1", mounts=(
            Mount("/hp", "/hugepages", type="hugetlbfs"),)))
    with pytest.raises(InvalidRequest, match="OCI mount not found for block volume"):
        rt.create_container(SID, ContainerConfig("c1", block_volumes=(
            {"id": "v", "scsi_addr": "0:1", "destination": "/nowhere"},)))
    with pytest.raises(InvalidRequest, match="memory_section_size_mb"):
        rt.hotplug_memory(SID, 1 << 32, 128)
    assert len(rt.events(SID)) == before
    teardown(rt)


# -- each new step failing: compensated, nothing left behind -------------------------------

def host_view(run: Path) -> tuple[list[str], list[int], set[str]]:
    """Mounts, processes and files under the runtime dir; logs and the guest's own file
    system (guest/: what the guest wrote, like a VM's disk) are not host resources."""
    files = set()
    for top, dirnames, filenames in os.walk(run):
        dirnames[:] = [d for d in dirnames if d not in ("log", "guest")]
        files.update(os.path.join(top, n) for n in dirnames + filenames)
    return (sorted(m.mount_point for m in mounts_under(run)),
            sorted(p.pid for p in find_by_cmdline(str(run))), files)


@pytest.mark.parametrize(("rpc", "step", "trace"), [
    ("UpdateInterface", "setup_network", False),
    ("UpdateRoutes", "setup_network", False),
    ("AddARPNeighbors", "setup_network", False),
    ("StartTracing", "start_tracing", True),
])
def test_a_failing_start_step_rolls_start_back_completely(open_rt, dirs, monkeypatch, rpc,
                                                         step, trace):
    monkeypatch.setenv(ENV_VAR, json.dumps(
        [{"rpc": rpc, "nth": 1, "action": "error", "code": "INTERNAL"}]))
    rt = open_rt(breadth_config("process", trace=trace))
    rt.create_sandbox(SandboxConfig(SID, network=NETWORK))
    before = host_view(dirs[1])
    with pytest.raises(OperationFailed, match=step):
        rt.start_sandbox(SID)
    state = rt.state(SID)
    assert state.state == "created" and state.guest is None and state.operation is None
    assert host_view(dirs[1]) == before
    assert types(rt)[-1] == "OperationAborted"
    monkeypatch.delenv(ENV_VAR)
    rt.start_sandbox(SID)       # the plan said only the first call fails; a new guest is clean
    assert rt.state(SID).state == "running"
    teardown(rt)


def test_arp_neighbours_unimplemented_is_a_warning(open_rt, monkeypatch):
    monkeypatch.setenv(ENV_VAR, json.dumps(
        [{"rpc": "AddARPNeighbors", "nth": "every", "action": "error", "code": "UNIMPLEMENTED"}]))
    rt = open_rt(make_config("process"))
    rt.create_sandbox(SandboxConfig(SID, network=NETWORK))
    rt.start_sandbox(SID)
    assert "NetworkConfigured" in types(rt)
    teardown(rt)


@pytest.mark.root
def test_a_failing_create_with_guest_storages_leaves_nothing(open_rt, dirs, monkeypatch,
                                                             tmp_path):
    monkeypatch.setenv(ENV_VAR, json.dumps(
        [{"rpc": "CreateContainer", "nth": 1, "action": "error", "code": "INTERNAL"}]))
    volume = tmp_path / "volume"
    volume.mkdir()
    rt = open_rt(breadth_config("namespaces"))
    rt.create_sandbox(SandboxConfig(SID))
    rt.start_sandbox(SID)
    before = host_view(dirs[1])
    config = ContainerConfig(SID, args=("true",), mounts=(
        Mount(str(volume), "/data"), Mount("/v/cache", "/cache", type="ephemeral"),
        Mount("/v/loc", "/loc", type="local"), Mount("/dev/shm", "/dev/shm")))
    with pytest.raises(OperationFailed, match="create_container_in_guest"):
        rt.create_container(SID, config)
    assert SID not in rt.state(SID).containers
    assert host_view(dirs[1]) == before
    rt.create_container(SID, config)   # the second CreateContainer is not faulted
    assert rt.state(SID).containers[SID].state == "created"
    teardown(rt)


# -- a crash inside the new steps: recovery rebuilds the operation from its params ---------

CHILD = """
import sys
from sandbox_fsm import ContainerConfig, Runtime, SandboxConfig
sys.path.insert(0, {tests!r})  # after sandbox_fsm: tests/sandbox_fsm must not shadow it
from hostcheck import make_config
rt = Runtime.open({state!r}, {run!r}, make_config("process"))
rt.create_sandbox(SandboxConfig({sid!r}, network={network!r}))
rt.start_sandbox({sid!r})
rt.create_container({sid!r}, ContainerConfig("c1", args=("sleep", "60")))
rt.start_container({sid!r}, "c1")
rt.pause_container({sid!r}, "c1")
"""


@pytest.mark.parametrize(("knob", "sandbox", "container"), [
    ("setup_network:after", "created", None),
    ("pause_container_in_guest:after", "running", "running"),
])
def test_a_crash_in_a_new_step_is_recovered(dirs, tmp_path, knob, sandbox, container):
    state_dir, run = dirs
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parents[1]), state=str(state_dir),
                                   run=str(run), sid=SID, network=NETWORK))
    child = subprocess.run([sys.executable, str(script)], env={**os.environ, CRASH_ENV: knob},
                           capture_output=True, timeout=60)
    assert child.returncode == -9, child.stderr.decode()
    with Runtime.open(state_dir, run, make_config("process")) as rt:
        state = rt.state(SID)
        assert state.state == sandbox and state.operation is None
        assert (state.containers["c1"].state if container else None) == container
        assert types(rt)[-1] == "OperationAborted"
        if container:
            assert rt.stats(SID, "c1")["pids_current"] == 2   # the container's init, sleep
            rt.pause_container(SID, "c1")   # the guest was resumed: pausing again works
        else:
            assert state.guest is None and not find_by_cmdline(str(run))
        teardown(rt)
