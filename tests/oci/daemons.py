"""Private containerd and dockerd for the OCI-client tests: own root, state, sockets and
exec-root under the test's tmp dir; stopped by pid (SIGTERM, then SIGKILL) even when a
test fails. dockerd runs `--bridge none --iptables=false` and starts its own containerd.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sandbox_fsm.host import SandboxLayout

SBX = str(Path(sys.executable).parent / "sbx")
IMAGE = "docker.io/sbx/busybox:1"
RUNTIMES = ("runc", "sbx")        # runc: the baseline, in the same run
DOCKER = "/usr/bin/docker"       # Debian's client (a newer one may sit earlier in PATH)
READY_S = 60.0


class Daemon:
    """A daemon we started: its Popen, its log, stopped by pid."""

    def __init__(self, argv: list[str], root: Path, name: str) -> None:
        self.root = root
        self.sbx_layouts: list[SandboxLayout] = []   # to check their socket dirs are gone
        self.log = root / f"{name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def ran_sbx(self, runtime_root: Path, cid: str) -> None:
        """Note a container that sbx ran under the client's --root `runtime_root`."""
        self.sbx_layouts.append(SandboxLayout(runtime_root / ".sbx" / "run", cid))

    def socket_dirs_left(self) -> list[str]:
        return [str(lay.sock_dir) for lay in self.sbx_layouts if lay.sock_dir.exists()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def wait_ready(self, probe: list[str]) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log.name} exited: {self.log.read_text()[-2000:]}")
            if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"not ready in {READY_S}s: {self.log.read_text()[-2000:]}")


class Containerd(Daemon):
    """containerd with a config of its own; `ctr(...)` runs the client against it."""

    DISABLED = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
                "io.containerd.internal.v1.tracing"]

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.address = str(root / "c.sock")
        config = root / "config.toml"
        config.write_text("\n".join([
            "version = 2", f'root = "{root / "root"}"', f'state = "{root / "state"}"',
            f"disabled_plugins = {json.dumps(self.DISABLED)}",
            "[grpc]", f'  address = "{self.address}"',
            "[ttrpc]", f'  address = "{self.address}.ttrpc"',
            "[debug]", '  address = ""', "[metrics]", '  address = ""', ""]))
        super().__init__(["containerd", "--config", str(config)], root, "containerd")
        self.wait_ready(["ctr", "-a", self.address, "version"])

    def ctr(self, *args: str, input: str | None = None, timeout: float = 90
            ) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", self.address, *args], input=input, text=True,
                              capture_output=True, timeout=timeout)


class Dockerd(Daemon):
    """dockerd with its data root, exec root, pidfile and socket under `root`, and sbx
    added as the runtime named `sbx`."""

    def __init__(self, root: Path, sbx: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.host = f"unix://{root / 'docker.sock'}"
        (root / "daemon.json").write_text("{}")
        super().__init__([
            "dockerd", "--config-file", str(root / "daemon.json"),
            "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"), "-H", self.host, "--bridge", "none",
            "--iptables=false", "--ip-masq=false", "--userland-proxy=false",
            "--add-runtime", f"sbx={sbx}"], root, "dockerd")
        self.wait_ready([DOCKER, "-H", self.host, "version"])

    def docker(self, *args: str, input: str | None = None, timeout: float = 90
               ) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, "-H", self.host, *args], input=input, text=True,
                              capture_output=True, timeout=timeout)

    @property
    def runtime_root(self) -> Path:
        """The --root dockerd passes to every runtime (even a custom one)."""
        return self.root / "exec" / "runtime-runc" / "moby"


def read_counter(path: Path) -> int:
    """The number a test container's loop writes to a host-visible file."""
    for _ in range(100):
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def frozen_then_running(pause: Callable[[], object], resume: Callable[[], object],
                        counter: Path) -> None:
    """A paused container's loop stops counting; resumed, it counts again."""
    pause()
    frozen = read_counter(counter)
    time.sleep(0.5)
    assert read_counter(counter) == frozen, "paused, yet the loop went on"
    resume()
    deadline = time.monotonic() + 10
    while read_counter(counter) == frozen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_counter(counter) > frozen, "resumed, yet the loop stays frozen"
