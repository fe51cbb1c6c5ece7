"""Agent client benchmark: AgentClient.check() against a bare generated stub, same run.

Both talk to the same server over the same kind of channel (a unix socket): the reference
guest agent (``python -m agent_io.guest``), or, only if it cannot start, a minimal
in-bench grpc.Health servicer. Rounds alternate stub and client so machine noise hits
both alike; the ratio of medians is the client's overhead (target <= 1.15x). Prints a
table and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402

from agent_io import AgentClient, AgentError  # noqa: E402
from agent_io import messages as m  # noqa: E402
from protos import health_pb2_grpc  # noqa: E402

TARGET_RATIO = 1.15


@contextmanager
def guest_agent(root: str) -> Iterator[tuple[str, str]]:
    """Yield (url, server kind): the real guest agent process, else an in-bench servicer."""
    url = f"unix:{root}/agent.sock"
    dirs = [os.path.join(root, d) for d in ("guest", "shared")]
    for d in dirs:
        os.mkdir(d, 0o700)
    log_path = os.path.join(root, "guest.log")
    with open(log_path, "wb") as log:  # a file, not a pipe: a chatty agent never blocks
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent_io.guest", "--listen", url,
             "--guest-dir", dirs[0], "--shared-dir", dirs[1]],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    try:
        started = wait_started(url, proc)
        if started is None:
            yield url, f"reference guest agent (pid {proc.pid})"
            return
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open(log_path, errors="replace") as log:
        last = log.read().strip().splitlines()[-1:]
    print(f"guest agent unavailable ({started}; {last}); using in-bench Health servicer",
          file=sys.stderr)
    with health_server(f"unix:{root}/health.sock") as fallback:
        yield fallback, "in-bench grpc.Health servicer"


def wait_started(url: str, proc: subprocess.Popen, limit: float = 15.0) -> Exception | None:
    """None once the agent answers Check; the reason if it exits or stays silent."""
    client, deadline = AgentClient(url), time.monotonic() + limit
    while True:
        try:
            client.wait_ready(0.5)
            return None
        except AgentError as exc:
            if proc.poll() is not None:
                return RuntimeError(f"agent exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                return exc
        finally:
            client.close()


class _Health(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):  # noqa: N802 - generated rpc name
        return m.health.HealthCheckResponse(status=m.health.HealthCheckResponse.SERVING)


@contextmanager
def health_server(url: str) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    health_pb2_grpc.add_HealthServicer_to_server(_Health(), server)
    server.add_insecure_port(url)
    server.start()
    try:
        yield url
    finally:
        server.stop(0).wait()


def per_second(n: int, call: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return n / (time.perf_counter() - start)


def measure(url: str, n: int, rounds: int) -> dict[str, list[float]]:
    channel = grpc.insecure_channel(url)
    stub = health_pb2_grpc.HealthStub(channel)
    request = m.health.CheckRequest()
    client = AgentClient(url)
    per_request = AgentClient(url, keep_connection=False)
    contenders: dict[str, Callable[[], object]] = {
        "bare stub": lambda: stub.Check(request, timeout=30),
        "AgentClient.check": client.check,
    }
    for call in contenders.values():  # warm up connections and code paths
        per_second(200, call)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, call in contenders.items():
            rates[name].append(per_second(n, call))
    rates["AgentClient, conn/request"] = [per_second(max(50, n // 20), per_request.check)]
    client.close()
    channel.close()
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 30 s)")
    ns = parser.parse_args(argv)
    n, rounds = (1000, 5) if ns.quick else (4000, 9)
    root = tempfile.mkdtemp(prefix="agent-bench-", dir="/tmp")
    os.chmod(root, 0o700)
    try:
        with guest_agent(root) as (url, kind):
            rates = measure(url, n, rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {name: statistics.median(r) for name, r in rates.items()}
    bare, ours = med["bare stub"], med["AgentClient.check"]
    ratio = bare / ours
    print(f"server: {kind}; {rounds} rounds x {n} Check calls, median per round")
    print(f"{'contender':<28}{'calls/s':>10}{'us/call':>10}")
    for name, rate in med.items():
        print(f"{name:<28}{rate:>10.0f}{1e6 / rate:>10.1f}")
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"overhead AgentClient vs bare stub: {ratio:.3f}x (target <= {TARGET_RATIO}x) {verdict}")
    print(json.dumps({
        "bench": "agent_client", "server": kind.split(" (")[0], "calls_per_round": n,
        "rounds": rounds, "bare_stub_per_s": round(bare), "client_per_s": round(ours),
        "client_conn_per_request_per_s": round(med["AgentClient, conn/request"]),
        "overhead_ratio": round(ratio, 3), "target_ratio": TARGET_RATIO,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
