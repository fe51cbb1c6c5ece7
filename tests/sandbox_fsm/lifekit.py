"""Helpers shared by the lifecycle, rollback, race and illegal-trigger tests."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox_fsm.host import find_by_cmdline, mounts_under

SID, CID = "sb1", "c1"


class HostView:
    """What the host shows under a runtime dir: mounts, processes naming it, files."""

    def __init__(self, run: Path) -> None:
        self.run = run

    def mounts(self) -> list[str]:
        return sorted(m.mount_point for m in mounts_under(self.run))

    def mounts_seen_by(self, pid: int) -> list[str]:
        """Mounts under the runtime dir in pid's mount namespace (a namespaced guest's)."""
        with open(f"/proc/{pid}/mountinfo") as f:
            points = [line.split()[4] for line in f]
        root = str(self.run)
        return sorted(p for p in points if p == root or p.startswith(root + "/"))

    def pids(self) -> list[int]:
        return sorted(p.pid for p in find_by_cmdline(str(self.run)))

    def files(self) -> set[str]:
        """Paths under the runtime dir, without the kept logs (they are diagnostics) and
        without what is mounted in a container's rootfs (the host's or the user's files,
        which others change: the mount points themselves are listed)."""
        found = set()
        points = set(self.mounts())
        for top, dirnames, filenames in os.walk(self.run):
            rel = os.path.relpath(top, self.run)
            if os.path.basename(rel) == "log":
                continue
            found.update(os.path.join(rel, n) for n in dirnames + filenames)
            dirnames[:] = [d for d in dirnames if "rootfs" not in Path(rel, d).parts
                           or os.path.join(top, d) not in points]
        return found

    def snapshot(self) -> tuple[list[str], list[int], set[str]]:
        return self.mounts(), self.pids(), self.files()
