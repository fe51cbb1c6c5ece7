"""One container process as the agent tracks it: its stdio, its exit status, signalling."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_io.guest.stdio import IsActive, Stdio


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
    oci: dict[str, Any] = field(default_factory=dict)  # the OCI process as received


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

    def signal(self, signum: int) -> None:
        """Signal the process by pid (an exec; runc signals a container's init); a dead
        process is not an error."""
        if self.exited:
            return
        if signum == signal.SIGKILL:
            self.killed_by_agent = True
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass
