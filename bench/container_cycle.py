"""One container through the guest agent: CreateContainer, StartContainer, WaitProcess,
RemoveContainer, timed against a real agent; the anchor is a bare `runc run` of the same
rootfs in the same run (used by lifecycle_bench.py; run alone, it prints both)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent_io import messages as m
from agent_io.client import AgentClient

REPO = Path(__file__).resolve().parents[1]


def busybox_rootfs(root: Path) -> Path:
    """A minimal root filesystem: busybox-static and its sh/true links."""
    rootfs = root / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for name in ("sh", "true"):
        os.symlink("busybox", rootfs / "bin" / name)
    return rootfs


class AgentUnderTest:
    """A guest agent started for the bench, stopped by pid."""

    def __init__(self, base: Path, namespaces: bool) -> None:
        guest, shared, sock = base / "guest", base / "shared", base / "agent.sock"
        for d in (guest, shared):
            d.mkdir(mode=0o700)
        cmd = [sys.executable, "-m", "agent_io.guest", "--listen", f"unix:{sock}",
               "--guest-dir", str(guest), "--shared-dir", str(shared),
               *(["--namespaces"] if namespaces else [])]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log = open(base / "agent.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.guest = guest
        self.client = AgentClient(f"unix:{sock}", sandbox_id="bench")
        deadline = time.monotonic() + 30
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench agent did not start: {(base / 'agent.log').read_text()}")
            time.sleep(0.02)
        self.client.wait_ready(30)

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def one_cycle(client: AgentClient, cid: str, root_path: str) -> float:
    """Seconds for create+start+wait+delete of `true` in the given guest rootfs path."""
    spec = m.oci.Spec(Process=m.oci.Process(Args=["/bin/true"], Env=["PATH=/bin"], Cwd="/"),
                      Root=m.oci.Root(Path=root_path))
    t0 = time.perf_counter()
    client.create_container(cid, spec)
    client.start_container(cid)
    status = client.wait_process(cid, cid)
    client.remove_container(cid)
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"bench container {cid} exited {status}")
    return elapsed


def agent_cycles(n: int, namespaces: bool) -> list[float]:
    """n container cycles through one agent whose guest dir holds a busybox rootfs."""
    base = Path(tempfile.mkdtemp(prefix="cycle-bench-", dir="/var/tmp"))
    agent = None
    try:
        agent = AgentUnderTest(base, namespaces)
        busybox_rootfs(agent.guest)
        one_cycle(agent.client, "warm", "/rootfs")
        return [one_cycle(agent.client, f"c{i}", "/rootfs") for i in range(n)]
    finally:
        if agent is not None:
            agent.stop()
        shutil.rmtree(base, ignore_errors=True)


def runc_run_cycles(n: int) -> list[float]:
    """The anchor: `runc run` (create+start+wait+delete in one) of the same busybox
    rootfs with runc's default spec, stdio to /dev/null."""
    base = Path(tempfile.mkdtemp(prefix="cycle-bench-runc-", dir="/var/tmp"))
    try:
        busybox_rootfs(base)
        subprocess.run(["runc", "spec"], cwd=base, check=True)
        config = json.loads((base / "config.json").read_text())
        config["process"].update(terminal=False, args=["/bin/true"])
        (base / "config.json").write_text(json.dumps(config))
        root = base / "state"
        times = []
        for i in range(n + 1):
            t0 = time.perf_counter()
            subprocess.run(["runc", "--root", str(root), "run", "--bundle", str(base),
                            f"bench{i}"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t0)
        return times[1:]   # the first one warms the page cache
    finally:
        shutil.rmtree(base, ignore_errors=True)


def compare(n: int) -> dict[str, float]:
    """Medians (ms) of the agent's cycle per driver and of the bare runc anchor, now."""
    anchor = statistics.median(runc_run_cycles(n)) * 1e3
    out = {"runc_run_ms": anchor}
    for name, ns in (("agent_process_ms", False), ("agent_namespaces_ms", True)):
        out[name] = statistics.median(agent_cycles(n, ns)) * 1e3
    return out


if __name__ == "__main__":
    figures = compare(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    for key, value in figures.items():
        print(f"{key:<22}{value:8.1f} ms  ({value / figures['runc_run_ms']:.2f}x runc run)")
