"""Event store test fixtures: child processes that are always killed and reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROCS = Path(__file__).with_name("es_procs.py")


class Children:
    """Starts es_procs.py roles; at teardown SIGKILLs and reaps each by pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.extra_pids: list[int] = []

    def start(self, role: str, *args: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(PROCS), role, *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for pid in self.extra_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    try:
        yield kids
    finally:
        kids.cleanup()
