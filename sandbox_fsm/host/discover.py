"""Find processes a crashed runtime started but never recorded (intent without outcome).

Each sandbox process carries a path unique to its sandbox (its socket) as one element
of its argv, so recovery can find it by that element even though its pid was never
written down: by the whole element, never a substring (the socket of a sandbox in
runtime dir /tmp/a/r is a substring of one in /tmp/a/x/tmp/a/r), and only among
processes started after the intent was recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from .procs import ProcessIdentity, identity_of

_TICKS = os.sysconf("SC_CLK_TCK")


def find_by_cmdline(marker: str) -> list[ProcessIdentity]:
    """Live processes (other than this one) whose command line contains `marker` anywhere
    (a broad sweep for leftovers under a directory; recovery uses `find_by_argv`)."""
    needle = os.fsencode(marker)
    return [ident for pid, cmdline in _cmdlines()
            if needle in cmdline and (ident := identity_of(pid)) is not None]


def _cmdlines() -> Iterator[tuple[int, bytes]]:
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                yield int(name), f.read()
        except OSError:
            continue


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def find_by_argv(*elements: str, started_after: float | None = None
                 ) -> list[ProcessIdentity]:
    """Live processes (other than this one) with one of `elements` as a whole argv element,
    started at or after `started_after` (epoch seconds; btime has 1 s resolution)."""
    wanted = {os.fsencode(e) for e in elements}
    boot = _boot_time() if started_after is not None else 0.0
    found = []
    for pid, cmdline in _cmdlines():
        if wanted.isdisjoint(cmdline.split(b"\0")):
            continue
        ident = identity_of(pid)
        if ident is None:
            continue
        if started_after is not None and boot + ident.start_time / _TICKS < started_after - 1:
            continue
        found.append(ident)
    return found
