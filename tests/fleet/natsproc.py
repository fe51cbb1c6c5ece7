"""nats-server processes for the fleet tests: loopback, free ports, private store dirs,
started and stopped by pid (never by name)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class NatsServer:
    """One nats-server with JetStream; `restart()` keeps its port and its store."""

    def __init__(self, root: Path, name: str = "n1", *, args: tuple[str, ...] = (),
                 cluster_port: int | None = None, routes: tuple[int, ...] = (),
                 jetstream: bool = True) -> None:
        self.root, self.name, self.extra = root, name, list(args)
        self.jetstream = jetstream
        self.port = free_port()
        self.cluster_port, self.routes = cluster_port, routes
        self.store = root / f"js-{name}"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [NATS_SERVER, *(["-js"] if self.jetstream else []), "-a", "127.0.0.1", "-p",
                str(self.port), "-sd", str(self.store), "-n", self.name, *self.extra]
        if self.cluster_port:
            argv += ["--cluster_name", "sbxtest", "--cluster",
                     f"nats://127.0.0.1:{self.cluster_port}", "--routes",
                     ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        return argv

    def start(self, wait: bool = True) -> NatsServer:
        log = open(self.root / f"{self.name}.log", "ab")  # noqa: SIM115 - closed by Popen's owner
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        if wait:
            wait_port(self.port)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


def cluster(root: Path, size: int = 3) -> list[NatsServer]:
    cports = [free_port() for _ in range(size)]
    return [NatsServer(root, f"n{i + 1}", cluster_port=cports[i],
                       routes=tuple(p for p in cports if p != cports[i]))
            for i in range(size)]
