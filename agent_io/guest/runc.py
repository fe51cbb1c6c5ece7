"""runc's command line, as the agent drives it: one state root per guest, errors from
runc's own log, exit statuses from the agent's reaper (the one owner of waitpid).

Every container verb goes through here (create, start, exec, kill, pause, resume, update,
ps, events, delete); `binary` may be crun, which takes the same command line.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from agent_io.guest.spawner import Reaper, Spawner

TIMEOUT_S = 60.0


class RuncError(ValueError):
    """runc refused or failed; the message is runc's own, one line."""


def _last_error(log: Path, offset: int) -> str:
    """The last error runc wrote to its JSON log after `offset`."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", "")).strip()
    return ""


class Runc:
    """`binary --root root --log LOG --log-format json VERB ...` for one guest."""

    def __init__(self, binary: str, root: Path, spawner: Spawner, reaper: Reaper) -> None:
        self.binary = binary
        self.root = root
        self._spawner = spawner
        self._reaper = reaper

    def run(self, args: list[str], log: Path, *, stdio: tuple[int, ...] | None = None,
            cwd: Path | None = None, timeout: float = TIMEOUT_S) -> str:
        """Run one verb; its stdout, or RuncError with what runc logged (or printed).

        `stdio` (stdin, stdout, stderr) is handed to runc, and by create/exec to the
        container's process; without it runc's output is captured."""
        offset = log.stat().st_size if log.exists() else 0
        argv = [self.binary, "--root", str(self.root), "--log", str(log),
                "--log-format", "json", *args]
        capture = stdio is None
        fds = (subprocess.DEVNULL, subprocess.PIPE, subprocess.PIPE) if stdio is None else stdio
        done: Future[int] = Future()

        def fork() -> subprocess.Popen[bytes]:
            popen = subprocess.Popen(argv, cwd=cwd, close_fds=True,
                                     stdin=fds[0], stdout=fds[1], stderr=fds[2])
            popen.returncode = 0  # the reaper owns waitpid; Popen must never poll it
            self._reaper.watch(popen.pid, done.set_result)
            return popen

        popen = self._spawner.call(fork)
        try:
            out, err = popen.communicate(timeout=timeout) if capture else (b"", b"")
            status = done.result(timeout=timeout)
        except (subprocess.TimeoutExpired, TimeoutError):
            os.kill(popen.pid, 9)
            raise RuncError(f"{args[0]}: runc did not answer in {timeout} s") from None
        if status != 0:
            why = _last_error(log, offset) or (err or b"").decode(errors="replace").strip()
            raise RuncError(f"runc {args[0]}: {why.splitlines()[-1] if why else 'failed'}")
        return (out or b"").decode(errors="replace")

    def json(self, args: list[str], log: Path) -> Any:
        """A verb whose stdout is JSON (ps --format json, events --stats, list)."""
        out = self.run(args, log).strip()
        try:
            return json.loads(out) if out else None
        except ValueError:
            raise RuncError(f"runc {args[0]}: unreadable output {out[:200]!r}") from None
