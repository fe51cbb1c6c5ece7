"""Helpers for guest agent tests: process trees, mounts, specs and stream reads."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from agent_io.client import AgentClient

REPO = Path(__file__).resolve().parents[2]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process below `root`, and of every member of their sessions."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (f := _stat_fields(int(name))) is not None:
            table[int(name)] = f  # f[1] ppid, f[3] session, f[19] start time
    found, frontier = set(), {root}
    while frontier:
        found |= frontier
        frontier = {pid for pid, f in table.items() if int(f[1]) in frontier} - found
    # Sessions the agent's processes lead (setsid): their members may have been re-parented.
    sessions = {p for p in found if p in table and int(table[p][3]) == p and p != root}
    found |= {pid for pid, f in table.items() if int(f[3]) in sessions}
    return {(pid, table[pid][19]) for pid in found if pid in table and pid != root}


def alive(pid: int, start: str) -> bool:
    f = _stat_fields(pid)
    return f is not None and f[19] == start and f[0] != "Z"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, from /proc/self/mountinfo (field 5)."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


ROOTFS = "/rootfs"  # the guest path of the busybox tree every test agent's guest dir holds


def oci_spec(args: list[str], *, terminal: bool = False, root: str = ROOTFS, cwd: str = "/",
             env: tuple[str, ...] = ("PATH=/usr/bin:/bin",)):
    """A minimal OCI spec as the runtime sends it."""
    from agent_io import messages as m

    return m.oci.Spec(
        Process=m.oci.Process(Args=args, Env=list(env), Cwd=cwd, Terminal=terminal),
        Root=m.oci.Root(Path=root),
    )


def read_all(client: AgentClient, cid: str, eid: str, stream: str = "stdout") -> bytes:
    """Read a stream to EOF."""
    read = client.read_stdout if stream == "stdout" else client.read_stderr
    out = b""
    while chunk := read(cid, eid):
        out += chunk
    return out


def proc_state(pid: int) -> str:
    f = _stat_fields(pid)
    return f[0] if f else "gone"


def wait_until(cond: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Poll a condition (never asserts a duration; the limit only bounds a hang)."""
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)
