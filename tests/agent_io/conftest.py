"""Start the reference guest agent as a real subprocess; tear it down by SIGKILL and prove
nothing of it remains (no process, no mount under the test's temp dir)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from guestkit import REPO, ROOTFS, alive, descendants, mounts_under
from hostcheck import busybox_tree

from agent_io.client import AgentClient

_SETTLE_S = 20.0


@dataclass
class Agent:
    """One running agent: its process, dirs, and a client bound to its socket."""

    proc: subprocess.Popen
    url: str
    guest_dir: Path
    shared_dir: Path
    log: Path
    client: AgentClient
    extra: dict = field(default_factory=dict)

    def new_client(self, **kwargs) -> AgentClient:
        return AgentClient(self.url, sandbox_id="sb", **kwargs)


def _wait_socket(agent_proc: subprocess.Popen, sock: Path, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not sock.exists():
        if agent_proc.poll() is not None:
            raise RuntimeError(f"agent exited {agent_proc.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"agent socket {sock} never appeared: {log.read_text()}")
        time.sleep(0.05)


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Factory: start_agent(namespaces=False, faults=None) -> Agent (SIGKILLed at teardown)."""
    started: list[Agent] = []

    def start(*, namespaces: bool = False, faults: list | None = None, name: str = "a") -> Agent:
        base = tmp_path / name
        run = base / "run"
        guest, shared = base / "guest", base / "shared"
        for d in (run, guest, shared):
            d.mkdir(parents=True, mode=0o700, exist_ok=True)
        busybox_tree(guest / ROOTFS.lstrip("/"))
        sock, log = run / "agent.sock", base / "agent.log"
        cmd = [sys.executable, "-m", "agent_io.guest", "--listen", f"unix:{sock}",
               "--guest-dir", str(guest), "--shared-dir", str(shared)]
        if faults is not None:
            plan = base / "faults.json"
            plan.write_text(json.dumps(faults))
            cmd += ["--faults", str(plan)]
        if namespaces:
            cmd.append("--namespaces")
        env = {k: v for k, v in os.environ.items() if k != "SBX_AGENT_FAULTS"}
        env["PYTHONPATH"] = str(REPO)
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        url = f"unix:{sock}"
        agent = Agent(proc, url, guest, shared, log, AgentClient(url, sandbox_id="sb"))
        started.append(agent)
        _wait_socket(proc, sock, log)
        agent.client.wait_ready(30)
        return agent

    yield start

    problems = []
    for agent in started:
        agent.client.close()
        left = descendants(agent.proc.pid)
        try:
            agent.proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        agent.proc.wait()
        deadline = time.monotonic() + _SETTLE_S
        while any(alive(*p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid, start_time in left:
            if alive(pid, start_time):
                problems.append(f"process {pid} of agent {agent.proc.pid} survived its SIGKILL")
                os.kill(pid, signal.SIGKILL)
    leftover = mounts_under(tmp_path)
    for point in reversed(leftover):
        subprocess.run(["umount", "-l", point], check=False)
    if leftover:
        problems.append(f"mounts left under {tmp_path}: {leftover}")
    assert not problems, problems


@pytest.fixture
def agent(start_agent: Callable[..., Agent]) -> Agent:
    return start_agent()
