"""One container process: how it is started (chroot, ids, session, death signal) and waited."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent_io.guest import procfs
from agent_io.guest.spawner import Reaper, Spawner
from agent_io.guest.stdio import IsActive, Stdio

_CHILDEXEC = str(Path(__file__).with_name("childexec.py"))
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ProcessSpec:
    """What to run, as the OCI process describes it (already validated)."""

    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    terminal: bool = False
    rows: int = 0
    cols: int = 0
    root: Path | None = None  # chroot here when set


class SpawnError(ValueError):
    """The process could not be started (bad args, cwd, or identity)."""


class Process:
    """A started process: its stdio, its exit status once reaped, and signalling."""

    def __init__(self, exec_id: str, spec: ProcessSpec, stdio: Stdio, pid: int) -> None:
        self.exec_id = exec_id
        self.spec = spec
        self.stdio = stdio
        self.pid = pid
        self.status: int | None = None
        self.killed_by_agent = False
        self.oom_kills_at_start = procfs.vmstat_counter("oom_kill")
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._on_exit: list[Callable[[Process], None]] = []

    def on_exit(self, callback: Callable[[Process], None]) -> None:
        """Run `callback(process)` once the exit status is known (now, if it already is)."""
        with self._lock:
            if not self._exited.is_set():
                self._on_exit.append(callback)
                return
        callback(self)

    def _reaped(self, wait_status: int) -> None:
        code = os.waitstatus_to_exitcode(wait_status)
        self.status = 128 - code if code < 0 else code
        with self._lock:
            self._exited.set()
            callbacks, self._on_exit = self._on_exit, []
        for callback in callbacks:
            callback(self)

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    def wait(self, is_active: IsActive, timeout: float | None = None) -> int | None:
        """Exit status (128 + signal when killed); None if cancelled or timed out first."""
        remaining = timeout
        while is_active():
            step = 0.25 if remaining is None else min(0.25, remaining)
            if self._exited.wait(step):
                return self.status
            if remaining is not None:
                remaining -= step
                if remaining <= 0:
                    return None
        return self.status

    def signal(self, signum: int, *, group: bool) -> None:
        """Signal the process (or its whole process group); a dead process is not an error."""
        if self.exited:
            return
        if signum == signal.SIGKILL:
            self.killed_by_agent = True
        try:
            if group:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


def start(exec_id: str, spec: ProcessSpec, spawner: Spawner, reaper: Reaper, where: str) -> Process:
    """Fork+exec on the spawner thread; the reaper reports the exit."""
    if not spec.args:
        raise SpawnError(f"{where}: process has no args")
    stdio = Stdio(spec.terminal, spec.rows, spec.cols)
    env = dict(e.split("=", 1) for e in spec.env if "=" in e)
    env.setdefault("PATH", _DEFAULT_PATH)
    if spec.terminal:
        env.setdefault("TERM", "xterm")

    status_r, status_w = os.pipe()
    payload = json.dumps({
        "args": spec.args, "env": env, "cwd": spec.cwd or "/", "uid": spec.uid, "gid": spec.gid,
        "groups": spec.groups, "terminal": spec.terminal, "parent": os.getpid(),
        "root": str(spec.root) if spec.root is not None else None,
    })

    def fork() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", _CHILDEXEC, payload, str(status_w)],
            stdin=stdio.child_fds[0], stdout=stdio.child_fds[1], stderr=stdio.child_fds[2],
            env={}, start_new_session=True, pass_fds=(status_w,),
        )

    try:
        popen = spawner.call(fork)
    except (OSError, subprocess.SubprocessError) as exc:
        popen, failure = None, str(exc)
    finally:
        os.close(status_w)
        stdio.close_child_ends()
    if popen is not None:
        with os.fdopen(status_r, "rb") as status:
            failure = status.read().decode(errors="replace")  # empty: exec succeeded
    else:
        os.close(status_r)
    if failure:
        if popen is not None:
            reaper.watch(popen.pid, lambda _status: None)  # reap the failed helper
        stdio.close()
        raise SpawnError(f"{where}: cannot start {spec.args!r}: {failure}")
    popen.returncode = 0  # the reaper owns waitpid; keep Popen from polling on collection
    proc = Process(exec_id, spec, stdio, popen.pid)
    reaper.watch(popen.pid, proc._reaped)
    return proc

