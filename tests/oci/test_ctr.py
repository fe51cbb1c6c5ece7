"""containerd 1.6 (`ctr run --runc-binary`) with sbx as its runtime, runc as the baseline
in the same run: every scenario runs through both, so a harness failure shows on runc too.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import IMAGE, RUNTIMES, SBX, Containerd, frozen_then_running

pytestmark = pytest.mark.root


class Ctr:
    """`ctr run` with one runtime: runc, or sbx through --runc-binary."""

    def __init__(self, daemon: Containerd, runtime: str, tmp: Path) -> None:
        self.d, self.runtime, self.tmp = daemon, runtime, tmp
        # --runc-root (the runtime's --root is <it>/<namespace>), under the daemon's dir:
        # what a failed test leaves there is scrubbed with the daemon's
        self.root = daemon.root / f"{runtime}-root"

    def flags(self, cid: str) -> list[str]:
        if self.runtime == "sbx":
            self.d.ran_sbx(self.root / "default", cid)
            return ["--runc-binary", SBX, "--runc-root", str(self.root)]
        return ["--runc-root", str(self.root)]

    def run(self, cid: str, *cmd: str, opts: tuple[str, ...] = (), input: str | None = None
            ) -> subprocess.CompletedProcess:
        return self.d.ctr("run", "--rm", *self.flags(cid), *opts, IMAGE, cid, *cmd,
                          input=input)

    @contextlib.contextmanager
    def task(self, cid: str, *cmd: str, opts: tuple[str, ...] = ()
             ) -> Iterator[subprocess.Popen]:
        """An attached `ctr run` in the background, running once this yields."""
        proc = subprocess.Popen(["ctr", "-a", self.d.address, "run", "--rm", *self.flags(cid),
                                 *opts, IMAGE, cid, *cmd], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            try:
                self.wait_status(cid, "RUNNING")
            except AssertionError as exc:
                proc.kill()
                raise AssertionError(f"{exc}; ctr run said: {proc.communicate()[1]}") from None
            yield proc
        finally:
            proc.kill()
            proc.communicate()

    def ok(self, *args: str) -> str:
        out = self.d.ctr(*args)
        assert out.returncode == 0, f"ctr {' '.join(args)}: {out.stderr}"
        return out.stdout

    def wait_status(self, cid: str, status: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [line.split() for line in self.ok("task", "ls").splitlines()[1:]]
            if [cid, status] in [[r[0], r[2]] for r in rows if len(r) == 3]:
                return
            time.sleep(0.1)
        raise AssertionError(f"task {cid} not {status}: {self.ok('task', 'ls')}")


@pytest.fixture(params=RUNTIMES)
def ctr(request: pytest.FixtureRequest, containerd: Containerd, tmp_path: Path) -> Ctr:
    return Ctr(containerd, request.param, tmp_path)


def test_run_output_exit_code_and_stdin(ctr: Ctr) -> None:
    out = ctr.run("echo", "echo", "hello")
    assert (out.returncode, out.stdout) == (0, "hello\n"), out.stderr
    out = ctr.run("exit7", "sh", "-c", "echo err >&2; exit 7")
    assert (out.returncode, out.stderr) == (7, "err\n")
    # ctr never closes a task's stdin, so the process reads one line
    out = ctr.run("stdin", "head", "-n1", input="piped\nmore\n")
    assert (out.returncode, out.stdout) == (0, "piped\n"), out.stderr


def test_terminal(ctr: Ctr) -> None:
    cmd = " ".join(["ctr", "-a", ctr.d.address, "run", "--rm", "-t", *ctr.flags("tty"),
                    IMAGE, "tty", "sh", "-c", "'tty; exit 3'"])
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                         text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert out.returncode == 3, out
    assert "/dev/pts/" in out.stdout


def _pause(ctr: Ctr, cid: str) -> None:
    ctr.ok("task", "pause", cid)
    ctr.wait_status(cid, "PAUSED")


def test_exec_ps_pause_resume_and_kill(ctr: Ctr, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    loop = "trap 'exit 42' TERM; i=0; while true; do i=$((i+1)); " \
           "echo $i > /data/n.new; mv /data/n.new /data/n; sleep 0.05; done"
    with ctr.task("loop", "sh", "-c", loop, opts=(
            "--mount", f"type=bind,src={data},dst=/data,options=rbind:rw")) as task:
        out = ctr.d.ctr("task", "exec", "--exec-id", "e1", "loop", "sh", "-c",
                        "cat /data/n; exit 5")
        assert out.returncode == 5 and int(out.stdout) > 0, out
        pids = [line.split()[0] for line in ctr.ok("task", "ps", "loop").splitlines()[1:]]
        assert pids and all(Path(f"/proc/{p}").exists() for p in pids)
        frozen_then_running(lambda: _pause(ctr, "loop"),
                            lambda: ctr.ok("task", "resume", "loop"), data / "n")
        ctr.ok("task", "kill", "-s", "TERM", "loop")
        assert task.wait(60) == 42


def test_kill_sigkill_gives_137(ctr: Ctr) -> None:
    with ctr.task("sleeper", "sleep", "1000") as task:
        ctr.ok("task", "kill", "-s", "KILL", "sleeper")
        assert task.wait(60) == 137


def test_delete_force_ends_a_running_task(ctr: Ctr) -> None:
    ctr.ok("run", "-d", *ctr.flags("forced"), IMAGE, "forced", "sleep", "1000")
    ctr.wait_status("forced", "RUNNING")
    ctr.ok("task", "delete", "--force", "forced")
    ctr.ok("container", "rm", "forced")
    assert "forced" not in ctr.ok("task", "ls")
