"""The default container rootfs: the host's own file system, seen read-only.

A container that names no rootfs still gets a real root to chroot into, so its volumes
can be mounted at their destinations without touching the host's directories: every
top-level entry of / is reproduced in the rootfs dir, symlinks as symlinks, directories as
read-only bind mounts, except the kernel's and the runtime's own trees (/proc, /sys, /dev,
/run, /tmp, and any that holds the runtime's state), which stay empty for the guest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Filled by the guest (proc, devices) or private to the container (tmp, run).
EMPTY = ("proc", "sys", "dev", "run", "tmp")


@dataclass(frozen=True)
class HostView:
    """What to build: `links` name -> target, `binds` names to bind, `dirs` names to make."""

    links: dict[str, str]
    binds: tuple[str, ...]
    dirs: tuple[str, ...]


def plan_host_view(private: list[str]) -> HostView:
    """The host view of /, leaving empty any top-level dir that holds a `private` path."""
    hidden = {_top(p) for p in private}
    links, binds, dirs = {}, [], list(EMPTY)
    for name in sorted(os.listdir("/")):
        path = os.path.join("/", name)
        if os.path.islink(path):
            links[name] = os.readlink(path)
        elif not os.path.isdir(path) or name in EMPTY:
            continue
        elif name in hidden or name == "lost+found":
            dirs.append(name)
        else:
            binds.append(name)
    return HostView(links, tuple(binds), tuple(sorted(set(dirs))))


def _top(path: str) -> str:
    parts = os.path.abspath(path).split(os.sep)
    return parts[1] if len(parts) > 1 else ""
