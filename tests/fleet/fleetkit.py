"""Helpers for the fleet tests: hosts as state dirs driven by the installed `sbx`, and a
reader of the stream that does not use the code under test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from eventstore import EventStore

SBX = str(Path(sys.executable).parent / "sbx")
WRITER = str(Path(__file__).with_name("writer.py"))


class Host:
    """One host: its own state and runtime dirs, its `sbx` runs and its shippers."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root / name, name
        self.root.mkdir(parents=True)
        self.state = self.root / "state"
        self.env = {**os.environ, "SBX_STATE_DIR": str(self.state),
                    "SBX_RUNTIME_DIR": str(self.root / "run")}
        for var in ("SBX_AGENT_FAULTS", "SBX_CRASH_AT"):
            self.env.pop(var, None)
        self.procs: list[subprocess.Popen] = []

    def __call__(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess:
        return subprocess.run([SBX, *args], capture_output=True, text=True,
                              env={**self.env, **(env or {})}, timeout=timeout)

    def ok(self, *args: str, **kw: object) -> subprocess.CompletedProcess:
        out = self(*args, **kw)  # type: ignore[arg-type]
        assert "Traceback" not in out.stderr
        assert out.returncode == 0, f"sbx {' '.join(args)}: {out.stderr}"
        return out

    def json(self, *args: str) -> object:
        return json.loads(self.ok("--json", *args).stdout)

    def popen(self, *args: str, stdout: object = subprocess.DEVNULL) -> subprocess.Popen:
        proc = subprocess.Popen([SBX, *args], env=self.env, stdout=stdout,  # type: ignore
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        self.procs.append(proc)
        return proc

    def writer(self, rate: float) -> subprocess.Popen:
        """A process appending to this host's log until stopped."""
        (self.state / "events").mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([sys.executable, WRITER, str(self.state / "events"), str(rate)],
                                stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    def host_id(self) -> str:
        return (self.state / "host-id").read_text().strip()

    def hashes(self) -> list[str]:
        with EventStore.open(self.state / "events", readonly=True) as store:
            return [e.hash for e in store.read_all()]

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(30)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()


def stream_messages(url: str, stream: str = "SBX_EVENTS") -> list[tuple[str, int, str, str]]:
    """(host, position, hash, msg id) of every message, in stream order, read with plain
    nats-py (an ordered consumer) rather than the code under test."""
    async def read() -> list[tuple[str, int, str, str]]:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            js = nc.jetstream()
            try:
                total = (await js.stream_info(stream)).state.messages
            except nats.js.errors.NotFoundError:
                return []
            out = []
            if total:
                sub = await nc.jetstream(timeout=2).subscribe("sbx.events.>", stream=stream,
                                                              ordered_consumer=True)
                while len(out) < total:
                    m = await sub.next_msg(timeout=10)
                    h = m.headers or {}
                    out.append((m.subject.split(".")[2], int(h["Sbx-Position"]),
                                h["Sbx-Hash"], h["Nats-Msg-Id"]))
                await sub.unsubscribe()
            return out
        finally:
            await nc.close()
    for attempt in range(10):   # a cluster that lost a node may place the consumer on it
        try:
            return asyncio.run(read())
        except (nats.errors.Error, TimeoutError):
            if attempt == 9:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def assert_exactly_once(url: str, host: Host, stream: str = "SBX_EVENTS") -> int:
    """The stream holds each of the host's events once, in the host's order, same hashes."""
    local = host.hashes()
    hid = host.host_id()
    got = [(pos, digest, mid) for h, pos, digest, mid in stream_messages(url, stream) if h == hid]
    assert [p for p, _, _ in got] == list(range(len(local))), "gaps, duplicates or reordering"
    assert [d for _, d, _ in got] == local
    assert all(mid == f"{hid}:{p}" for p, _, mid in got)
    return len(local)
