"""Read process facts from /proc: state, session members, cpu and memory figures."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    session: int
    utime_ns: int
    stime_ns: int
    rss_bytes: int


def stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); field n is rest[n - 3]
    return ProcStat(
        pid=pid,
        state=rest[0],
        ppid=int(rest[1]),
        session=int(rest[3]),
        utime_ns=int(rest[11]) * 1_000_000_000 // _TICKS,
        stime_ns=int(rest[12]) * 1_000_000_000 // _TICKS,
        rss_bytes=int(rest[21]) * _PAGE,
    )


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def members(sessions: set[int]) -> list[ProcStat]:
    """Every live process whose session is one of `sessions` (a container's processes)."""
    found = []
    for pid in all_pids():
        st = stat(pid)
        if st is not None and st.session in sessions and st.state != "Z":
            found.append(st)
    return found


def vmstat_counter(name: str) -> int:
    """A counter from /proc/vmstat (e.g. oom_kill); 0 when the kernel does not have it."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == name:
                    return int(value)
    except OSError:
        return 0
    return 0
