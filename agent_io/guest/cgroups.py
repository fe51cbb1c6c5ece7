"""Cgroup directories of the agent's containers, on cgroup v1, v2 or both (hybrid).

runc puts a container at `<agent's own cgroup>/sbx-<token>/<container id>` in every
hierarchy (a relative cgroupsPath nests under the caller's cgroup), so one guest's
containers share one parent that the agent, or its janitor after a crash, removes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_NOT_CONTROLLERS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
                    "nsdelegate", "memory_recursiveprot", "clone_children"}


def _mounts() -> list[tuple[Path, frozenset[str], bool]]:
    """(mount point, controllers, is v2) of every cgroup file system we can see."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, opts = fields[sep + 1], fields[sep + 3]
            if fstype in ("cgroup", "cgroup2"):
                point = Path(fields[4].encode().decode("unicode_escape"))
                found.append((point, frozenset(opts.split(",")) - _NOT_CONTROLLERS,
                              fstype == "cgroup2"))
    return found


def dirs_of(pid: int | str = "self") -> list[Path]:
    """The cgroup directories of a process, one per hierarchy it is in."""
    mounts = _mounts()
    out = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            wanted = frozenset(c for c in controllers.split(",") if c)
            for point, have, v2 in mounts:
                if (v2 and not wanted) or (not v2 and wanted and wanted <= have):
                    out.append(point / path.lstrip("/"))
                    break
    return out


def parent_dirs(token: str) -> list[Path]:
    """Where this guest's containers live: `sbx-<token>` under each of our own cgroups."""
    return [d / f"sbx-{token}" for d in dirs_of("self")]


def read_counter(path: Path, key: str) -> int:
    """`key N` from a flat keyed cgroup file (memory.events, memory.oom_control)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0


def oom_kills(dirs: list[Path]) -> int:
    """OOM kills inside a container's memory cgroup (v2 memory.events, v1 oom_control)."""
    for d in dirs:
        for name in ("memory.events", "memory.oom_control"):
            if (d / name).exists():
                return read_counter(d / name, "oom_kill")
    return 0


def _procs(d: Path) -> list[int]:
    try:
        return [int(p) for p in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_frozen(freezer: Path) -> None:
    """v1: freeze, SIGKILL every member (frozen pids cannot be reused), thaw."""
    state = freezer / "freezer.state"
    try:
        state.write_text("FROZEN")
        for pid in _procs(freezer):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        state.write_text("THAWED")


def kill_all(cgroup_dirs: list[Path]) -> None:
    """SIGKILL every process of one container's cgroups (cgroup.kill on v2)."""
    for d in cgroup_dirs:
        if (d / "cgroup.kill").exists():
            (d / "cgroup.kill").write_text("1")
            return
    for d in cgroup_dirs:
        if (d / "freezer.state").exists():
            _kill_frozen(d)
            return


def remove_tree(parents: list[Path], timeout: float = 10.0) -> list[Path]:
    """Kill what is left below `parents` and remove them; the dirs that would not go."""
    children = [c for p in parents if p.is_dir() for c in p.iterdir() if c.is_dir()]
    by_name: dict[str, list[Path]] = {}
    for c in children:
        by_name.setdefault(c.name, []).append(c)
    for group in by_name.values():
        kill_all(group)
    deadline = time.monotonic() + timeout
    left = [*children, *parents]
    while left:
        for d in list(left):
            try:
                d.rmdir()
                left.remove(d)
            except FileNotFoundError:
                left.remove(d)
            except OSError:
                pass
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return left
