"""AgentClient against real gRPC servers on unix sockets: failures, faults, wire semantics.

The servers here implement Health plus a recording subset of AgentService; the full
"every rpc against the real guest" suite lives with the guest agent.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest

from agent_io import (
    AgentClient,
    AgentDead,
    AgentRpcError,
    AgentTimeout,
    AgentUnavailable,
)
from agent_io import messages as m
from agent_io.client import COPY_CHUNK_BYTES, COPY_DIR_MODE
from agent_io.faults import EXIT_CODE, FaultPlan
from protos import agent_pb2_grpc, health_pb2_grpc

MiB = COPY_CHUNK_BYTES


class Health(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):  # noqa: N802 - generated rpc name
        return m.health.HealthCheckResponse(status=m.health.HealthCheckResponse.SERVING)

    def Version(self, request, context):  # noqa: N802
        return m.health.VersionCheckResponse(grpc_version="test", agent_version="0")


class RecordingAgent(agent_pb2_grpc.AgentServiceServicer):
    """Records what the client sends; AddARPNeighbors stays UNIMPLEMENTED like an old agent."""

    def __init__(self) -> None:
        self.requests: dict[str, list] = {}

    def _record(self, rpc: str, request):
        self.requests.setdefault(rpc, []).append(request)
        return m.Empty()

    def CopyFile(self, request, context):  # noqa: N802
        return self._record("CopyFile", request)

    def MemHotplugByProbe(self, request, context):  # noqa: N802
        return self._record("MemHotplugByProbe", request)

    def SignalProcess(self, request, context):  # noqa: N802
        return self._record("SignalProcess", request)

    def SetGuestDateTime(self, request, context):  # noqa: N802
        return self._record("SetGuestDateTime", request)

    def StartContainer(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.NOT_FOUND, f"no container {request.container_id}")


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aio-", dir="/tmp"))
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Server:
    def __init__(self, url: str, plan: FaultPlan | None = None) -> None:
        self.url = url
        self.agent = RecordingAgent()
        self.plan = plan or FaultPlan()
        self._pool = futures.ThreadPoolExecutor(4)
        self._server = grpc.server(self._pool, interceptors=[self.plan.server_interceptor()])
        health_pb2_grpc.add_HealthServicer_to_server(Health(), self._server)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self.agent, self._server)
        self._server.add_insecure_port(url)
        self._server.start()

    def stop(self) -> None:
        self.plan.release()
        self._server.stop(0).wait()
        self._pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def serve(sock_dir: Path) -> Iterator:
    servers: list[Server] = []

    def start(plan: FaultPlan | None = None) -> Server:
        server = Server(f"unix:{sock_dir}/agent-{len(servers)}.sock", plan)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


# -- connection failures ------------------------------------------------------------------

def test_nothing_listening_is_unavailable(sock_dir: Path) -> None:
    with AgentClient(f"unix:{sock_dir}/none.sock", sandbox_id="sb1") as client:
        with pytest.raises(AgentUnavailable) as info:
            client.check()
    err = info.value
    assert (err.rpc, err.sandbox_id, err.code) == ("Check", "sb1", "UNAVAILABLE")
    assert "sb1" in str(err) and "Check" in str(err)


def test_mark_dead_refuses_every_later_call(serve) -> None:
    server = serve()
    client = AgentClient(server.url, sandbox_id="sb2")
    assert client.check() == m.health.HealthCheckResponse.SERVING
    client.mark_dead("guest crashed")
    with pytest.raises(AgentDead, match="guest crashed") as info:
        client.start_container("c1")
    assert (info.value.rpc, info.value.container_id) == ("StartContainer", "c1")
    assert client.dead


def test_dead_proxy_pid_is_refused_without_dialing(serve) -> None:
    server = serve()
    proc = subprocess.Popen(["sleep", "60"])
    try:
        client = AgentClient(server.url, proxy_pid=proc.pid, sandbox_id="sb3")
        assert client.check() == m.health.HealthCheckResponse.SERVING
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(AgentDead, match=f"pid {proc.pid}"):
        client.check()


def test_zombie_proxy_counts_as_dead(serve) -> None:
    server = serve()
    proc = subprocess.Popen(["true"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
        with pytest.raises(AgentDead):
            AgentClient(server.url, proxy_pid=proc.pid).check()
    finally:
        proc.wait()


def test_one_channel_per_request_still_works(serve) -> None:
    server = serve()
    client = AgentClient(server.url, keep_connection=False)
    assert [client.check() for _ in range(3)] == [m.health.HealthCheckResponse.SERVING] * 3
    assert client.version().grpc_version == "test"


def test_agent_error_status_is_typed(serve) -> None:
    server = serve()
    with AgentClient(server.url, sandbox_id="sb4") as client:
        with pytest.raises(AgentRpcError) as info:
            client.start_container("c9")
    err = info.value
    assert (err.rpc, err.code, err.container_id) == ("StartContainer", "NOT_FOUND", "c9")
    assert "no container c9" in err.details


def test_bad_timeouts_are_rejected() -> None:
    with pytest.raises(ValueError, match="NoSuchRpc"):
        AgentClient("unix:/tmp/x.sock", timeouts={"NoSuchRpc": 1})
    with pytest.raises(ValueError, match="Check"):
        AgentClient("unix:/tmp/x.sock", timeouts={"Check": 0})
    client = AgentClient("unix:/tmp/x.sock", timeouts={"default": 5, "WaitProcess": 7})
    assert (client.timeout_for("CreateContainer"), client.timeout_for("WaitProcess")) == (5, 7)
    assert client.timeout_for("Check") == 30 and client.timeout_for("ReadStdout") is None


def test_wait_ready_waits_for_a_late_agent(sock_dir: Path, serve) -> None:
    url = f"unix:{sock_dir}/agent-0.sock"
    client = AgentClient(url)
    with pytest.raises(AgentTimeout):
        client.wait_ready(0.2)
    serve()
    assert client.wait_ready(10) == m.health.HealthCheckResponse.SERVING


# -- server-side faults -------------------------------------------------------------------

def test_server_delay_fault_hits_the_configured_deadline(serve) -> None:
    plan = FaultPlan.from_rules([{"rpc": "Check", "nth": 1, "action": "delay", "seconds": 2}])
    server = serve(plan)
    client = AgentClient(server.url, timeouts={"Check": 0.2}, sandbox_id="sb5")
    with pytest.raises(AgentTimeout) as info:
        client.check()
    assert (info.value.rpc, info.value.code) == ("Check", "DEADLINE_EXCEEDED")
    assert client.check() == m.health.HealthCheckResponse.SERVING  # only the 1st call


def test_server_error_and_hang_faults(serve) -> None:
    plan = FaultPlan.from_rules([
        {"rpc": "Version", "nth": 2, "action": "error", "code": "RESOURCE_EXHAUSTED"},
        {"rpc": "Check", "nth": "every", "action": "hang"},
    ])
    server = serve(plan)
    client = AgentClient(server.url, timeouts={"Check": 0.2})
    client.version()
    with pytest.raises(AgentRpcError, match="rule #0") as info:
        client.version()
    assert info.value.code == "RESOURCE_EXHAUSTED"
    with pytest.raises(AgentTimeout):
        client.check()
    assert plan.calls("Version") == 2 and plan.calls("Check") == 1


AGENT_SCRIPT = textwrap.dedent("""
    import sys
    from concurrent import futures
    import grpc
    from agent_io import messages as m
    from agent_io.faults import FaultPlan
    from protos import health_pb2_grpc

    class Health(health_pb2_grpc.HealthServicer):
        def Check(self, request, context):
            return m.health.HealthCheckResponse(status=1)

    server = grpc.server(futures.ThreadPoolExecutor(2),
                         interceptors=[FaultPlan.load().server_interceptor()])
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    server.add_insecure_port(sys.argv[1])
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()
""")


def test_server_exit_fault_kills_the_agent_process(sock_dir: Path) -> None:
    url = f"unix:{sock_dir}/exit.sock"
    env = dict(os.environ, SBX_AGENT_FAULTS='[{"rpc": "Check", "nth": 2, "action": "exit"}]')
    proc = subprocess.Popen([sys.executable, "-c", AGENT_SCRIPT, url], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        client = AgentClient(url)
        assert client.check() == m.health.HealthCheckResponse.SERVING
        with pytest.raises(AgentUnavailable):
            client.check()
        assert proc.wait(timeout=30) == EXIT_CODE
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


# -- client-side faults -------------------------------------------------------------------

def test_client_interceptor_faults(serve) -> None:
    server = serve()
    plan = FaultPlan.from_rules([
        {"rpc": "Check", "nth": 1, "action": "error", "code": "PERMISSION_DENIED"},
        {"rpc": "Check", "nth": 2, "action": "exit"},
        {"rpc": "Check", "nth": 3, "action": "hang"},
        {"rpc": "Check", "nth": 4, "action": "delay", "seconds": 0.01},
        {"rpc": "Version", "nth": 1, "action": "delay", "seconds": 5},
    ])
    client = AgentClient(server.url, timeouts={"Check": 0.2, "Version": 0.2},
                         interceptors=[plan.client_interceptor()])
    with pytest.raises(AgentRpcError) as info:
        client.check()
    assert info.value.code == "PERMISSION_DENIED"
    with pytest.raises(AgentUnavailable, match="exited"):
        client.check()
    with pytest.raises(AgentTimeout):
        client.check()
    assert client.check() == m.health.HealthCheckResponse.SERVING
    with pytest.raises(AgentTimeout):
        client.version()


# -- wire semantics -----------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, MiB, 3 * MiB + MiB // 2])
def test_copy_file_chunks(serve, tmp_path: Path, size: int) -> None:
    server = serve()
    src = tmp_path / "blob"
    data = os.urandom(size)
    src.write_bytes(data)
    src.chmod(0o640)
    AgentClient(server.url).copy_file(src, "/guest/etc/blob")
    sent = server.agent.requests["CopyFile"]
    want_chunks = max(1, -(-size // MiB))
    assert len(sent) == want_chunks
    assert [r.offset for r in sent] == [i * MiB for i in range(want_chunks)]
    assert b"".join(r.data for r in sent) == data
    st = src.stat()
    for r in sent:
        assert (r.path, r.file_size, r.dir_mode) == ("/guest/etc/blob", size, COPY_DIR_MODE)
        assert (r.file_mode, r.uid, r.gid) == (st.st_mode, st.st_uid, st.st_gid)
        assert len(r.data) <= MiB


def test_mem_hotplug_probes_one_address_per_section(serve) -> None:
    server = serve()
    client = AgentClient(server.url)
    client.mem_hotplug_by_probe(0x1_0000_0000, 512, 128)
    (request,) = server.agent.requests["MemHotplugByProbe"]
    assert list(request.memHotplugProbeAddr) == [0x1_0000_0000 + i * (128 << 20) for i in range(4)]
    with pytest.raises(ValueError, match="section size 0"):
        client.mem_hotplug_by_probe(0, 512, 0)


def test_signal_all_sends_empty_exec_id(serve) -> None:
    server = serve()
    client = AgentClient(server.url)
    client.signal_process("c1", signal.SIGTERM, all=True)
    client.signal_process("c1", signal.SIGKILL, "e1")
    sent = [(r.container_id, r.exec_id, r.signal) for r in server.agent.requests["SignalProcess"]]
    assert sent == [("c1", "", signal.SIGTERM), ("c1", "e1", signal.SIGKILL)]
    with pytest.raises(ValueError, match="c1"):
        client.signal_process("c1", signal.SIGTERM)


def test_set_guest_date_time_sends_unix_seconds_and_micros(serve) -> None:
    server = serve()
    client = AgentClient(server.url)
    when = datetime(2024, 2, 29, 12, 0, 1, 250_000, tzinfo=timezone(timedelta(hours=2)))
    client.set_guest_date_time(when)
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    client.set_guest_date_time(before_epoch)
    sent = [(r.Sec, r.Usec) for r in server.agent.requests["SetGuestDateTime"]]
    assert sent == [(int(when.timestamp()), 250_000), (-1, 500_000)]
    with pytest.raises(ValueError, match="timezone"):
        client.set_guest_date_time(datetime(2024, 1, 1))


def test_arp_neighbors_unimplemented_is_a_warning(serve, caplog) -> None:
    server = serve()
    client = AgentClient(server.url, sandbox_id="sb6")
    neighbor = m.types.ARPNeighbor(device="eth0", lladdr="02:00:00:00:00:01")
    with caplog.at_level(logging.WARNING, logger="agent_io.client"):
        client.add_arp_neighbors([neighbor])
    assert any("AddARPNeighbors" in r.getMessage() and "sb6" in r.getMessage()
               for r in caplog.records)
