"""Fixtures that undo every mount and process a host test makes, even when it fails.

Cleanup uses its own umount2/kill calls, not the code under test, so a bug there cannot
leave a mount behind (pytest's tmp_path pruning would then delete through it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 0x2
_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _mount_points_under(base: Path) -> list[str]:
    prefix = os.path.realpath(base)
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), line.split(b" ")[4])
            point = os.fsdecode(raw)
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


@pytest.fixture
def mount_dir(tmp_path: Path) -> Iterator[Path]:
    """A temp dir whose mounts are all detached (newest first) at teardown."""
    yield tmp_path
    for _ in range(100):
        points = _mount_points_under(tmp_path)
        if not points:
            return
        for point in reversed(points):
            _libc.umount2(os.fsencode(point), _MNT_DETACH)
    pytest.fail(f"mounts left under {tmp_path}: {_mount_points_under(tmp_path)}")


class PidJanitor:
    """Pids a test started; SIGKILLed and reaped at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def track(self, pid: int) -> int:
        self.pids.append(pid)
        return pid

    def cleanup(self) -> None:
        for pid in reversed(self.pids):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    continue  # it had exited; now reaped
            except ChildProcessError:
                continue  # already reaped: the pid may belong to someone else now
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@pytest.fixture
def janitor() -> Iterator[PidJanitor]:
    jan = PidJanitor()
    yield jan
    jan.cleanup()
