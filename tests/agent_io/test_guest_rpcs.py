"""Sandbox-level rpcs, health, fault plans, unavailability and clean shutdown of the agent."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from guestkit import REPO, oci_spec

from agent_io import messages as m
from agent_io.errors import AgentRpcError, AgentTimeout, AgentUnavailable


def test_health_and_version(agent):
    assert agent.client.check() == m.health.HealthCheckResponse.SERVING
    v = agent.client.version()
    assert v.agent_version and v.grpc_version
    sock = Path(agent.url[len("unix:"):])
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600


def test_network_state_round_trip(agent):
    c = agent.client
    iface = m.types.Interface(name="eth0", device="eth0", mtu=1500, hwAddr="02:00:00:00:00:01",
                              IPAddresses=[m.types.IPAddress(address="10.0.0.2", mask="24")])
    assert c.update_interface(iface).name == "eth0"
    assert [i.name for i in c.list_interfaces()] == ["eth0"]
    routes = [m.types.Route(dest="10.0.0.0/24", device="eth0"),
              m.types.Route(dest="", gateway="10.0.0.1", device="eth0")]
    assert len(c.update_routes(routes)) == 2
    assert [r.gateway for r in c.list_routes()] == ["", "10.0.0.1"]
    c.add_arp_neighbors([m.types.ARPNeighbor(
        toIPAddress=m.types.IPAddress(address="10.0.0.9"), device="eth0", lladdr="02:aa")])
    with pytest.raises(AgentRpcError) as err:
        c.update_routes([m.types.Route(dest="not-a-net")])
    assert err.value.code == "INVALID_ARGUMENT" and "not-a-net" in err.value.details
    with pytest.raises(AgentRpcError) as err:
        c.update_interface(m.types.Interface(
            name="eth1", IPAddresses=[m.types.IPAddress(address="999.1.1.1")]))
    assert err.value.code == "INVALID_ARGUMENT"


def test_guest_machine_rpcs_are_recorded_not_applied(agent):
    c = agent.client
    details = c.get_guest_details()
    block = Path("/sys/devices/system/memory/block_size_bytes")
    if block.exists():
        assert details.mem_block_size_bytes == int(block.read_text(), 16)
    assert details.agent_details.version
    c.online_cpu_mem(2, wait=True)
    c.reseed_random_dev(b"entropy")
    with pytest.raises(AgentRpcError):
        c.reseed_random_dev(b"")
    before = datetime.now(UTC)
    c.set_guest_date_time(datetime(2001, 1, 1, tzinfo=UTC))
    assert datetime.now(UTC) >= before  # the host clock did not move
    if details.mem_block_size_bytes:
        c.mem_hotplug_by_probe(details.mem_block_size_bytes * 4, 256, 128)
        with pytest.raises(AgentRpcError) as err:
            c.mem_hotplug_by_probe(4096, 256, 128)
        assert err.value.code == "INVALID_ARGUMENT"


def test_tracing_toggles(agent):
    agent.client.start_tracing()
    with pytest.raises(AgentRpcError) as err:
        agent.client.start_tracing()
    assert err.value.code == "FAILED_PRECONDITION"
    agent.client.stop_tracing()
    with pytest.raises(AgentRpcError):
        agent.client.stop_tracing()


def test_oom_event_blocks_until_cancelled(agent):
    client = agent.new_client(timeouts={"GetOOMEvent": 0.5})
    with pytest.raises(AgentTimeout):
        client.get_oom_event()
    assert agent.client.check() == m.health.HealthCheckResponse.SERVING


def test_delay_fault_times_out_within_deadline(start_agent):
    agent = start_agent(faults=[{"rpc": "CreateContainer", "nth": 1, "action": "delay",
                                 "seconds": 5}])
    client = agent.new_client(timeouts={"CreateContainer": 0.3})
    with pytest.raises(AgentTimeout):
        client.create_container("c", oci_spec(["true"]))


def test_exit_fault_kills_agent_and_then_unavailable(start_agent):
    agent = start_agent(faults=[{"rpc": "StartContainer", "nth": 1, "action": "exit"}])
    agent.client.create_container("c", oci_spec(["sleep", "600"]))
    with pytest.raises(AgentUnavailable):
        agent.client.start_container("c")
    assert agent.proc.wait(30) == 70
    with pytest.raises(AgentUnavailable):
        agent.new_client().check()


def test_sigterm_is_a_clean_shutdown(agent):
    agent.client.create_container("c", oci_spec(["sleep", "600"]))
    agent.client.start_container("c")
    deadline = time.monotonic() + 20  # tini starts the command after StartContainer
    while len(pids := json.loads(agent.client.list_processes("c", "json"))) < 2 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pids) == 2  # init and sleep
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(30) == 0
    assert not Path(agent.url[len("unix:"):]).exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped by the agent before it left: not even a zombie
    assert not (agent.guest_dir / ".agent").exists()  # runc's state and bundles went too
    with pytest.raises(AgentUnavailable):
        agent.new_client().check()


def test_world_writable_socket_dir_refused(tmp_path: Path):
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o777)
    res = subprocess.run(
        [sys.executable, "-m", "agent_io.guest", "--listen", f"unix:{public}/a.sock",
         "--guest-dir", str(tmp_path), "--shared-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2 and "world-writable" in res.stderr and str(public) in res.stderr
