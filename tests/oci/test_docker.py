"""dockerd 20.10 (`--add-runtime sbx=...`, Debian's /usr/bin/docker client) with sbx as
the runtime, runc as the baseline in the same run."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from daemons import IMAGE, RUNTIMES, Dockerd, frozen_then_running, read_counter

pytestmark = pytest.mark.root
TAG = IMAGE.removeprefix("docker.io/")


class Docker:
    def __init__(self, daemon: Dockerd, runtime: str) -> None:
        self.d, self.runtime = daemon, runtime

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return self.d.docker(*args, input=input)

    def ok(self, *args: str) -> str:
        out = self.d.docker(*args)
        assert out.returncode == 0, f"docker {' '.join(args)}: {out.stderr}"
        return out.stdout

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return self.d.docker("run", "--runtime", self.runtime, *args, input=input)

    def detached(self, name: str, *args: str) -> str:
        cid = self.ok("run", "-d", "--runtime", self.runtime, "--name", name, *args).strip()
        if self.runtime == "sbx":
            self.d.ran_sbx(self.d.runtime_root, cid)
        return cid

    def inspect(self, name: str) -> dict:
        return json.loads(self.ok("inspect", name))[0]


@pytest.fixture(params=RUNTIMES)
def docker(request: pytest.FixtureRequest, dockerd: Dockerd) -> Docker:
    return Docker(dockerd, request.param)


def test_run_output_exit_code_stdin_and_terminal(docker: Docker) -> None:
    out = docker.run("--rm", TAG, "echo", "hello")
    assert (out.returncode, out.stdout) == (0, "hello\n"), out.stderr
    out = docker.run("--rm", TAG, "sh", "-c", "echo err >&2; exit 7")
    assert (out.returncode, out.stderr) == (7, "err\n")
    out = docker.run("--rm", "-i", TAG, "cat", input="piped\nthrough\n")
    assert (out.returncode, out.stdout) == (0, "piped\nthrough\n"), out.stderr
    cmd = f"/usr/bin/docker -H {docker.d.host} run --rm -t --runtime {docker.runtime} " \
          f"{TAG} sh -c 'tty; exit 3'"
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                         text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert out.returncode == 3 and "/dev/pts/" in out.stdout, out


def _pause(docker: Docker, name: str) -> None:
    docker.ok("pause", name)
    assert docker.inspect(name)["State"]["Paused"]


def test_detached_logs_exec_top_pause_update_stats_kill(docker: Docker, tmp_path: Path
                                                         ) -> None:
    data = tmp_path / "data"
    data.mkdir()
    name = f"loop-{docker.runtime}"
    loop = "trap 'exit 42' TERM; echo started; i=0; while true; do i=$((i+1)); " \
           "echo $i > /data/n.new; mv /data/n.new /data/n; sleep 0.05; done"
    cid = docker.detached(name, "-v", f"{data}:/data", TAG, "sh", "-c", loop)
    try:
        assert read_counter(data / "n") > 0
        assert docker.ok("logs", name) == "started\n"
        out = docker("exec", name, "sh", "-c", "cat /data/n; exit 5")
        assert out.returncode == 5 and int(out.stdout) > 0, out
        top = docker.ok("top", name).splitlines()
        assert top[0].split()[:2] == ["UID", "PID"] and len(top) >= 2
        frozen_then_running(lambda: _pause(docker, name), lambda: docker.ok("unpause", name),
                            data / "n")
        docker.ok("update", "--memory", "64m", "--memory-swap", "128m", name)
        assert docker.inspect(name)["HostConfig"]["Memory"] == 64 << 20
        limit = docker.ok("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert int(limit) == 64 << 20, "the new limit is not the container's cgroup's"
        stats = json.loads(docker.ok("stats", "--no-stream", "--format", "{{json .}}", name))
        assert stats["Name"] == name
        docker.ok("kill", "-s", "TERM", name)
        assert docker.ok("wait", name).strip() == "42"
    finally:
        docker("rm", "-f", cid)


def test_kill_sigkill_and_rm_force(docker: Docker) -> None:
    name = f"sleeper-{docker.runtime}"
    docker.detached(name, TAG, "sleep", "1000")
    docker.ok("kill", name)
    assert docker.ok("wait", name).strip() == "137"
    docker.ok("rm", name)
    name = f"forced-{docker.runtime}"
    docker.detached(name, TAG, "sleep", "1000")
    start = time.monotonic()
    docker.ok("rm", "-f", name)
    assert time.monotonic() - start < 60
    assert name not in docker.ok("ps", "-a", "--format", "{{.Names}}")
