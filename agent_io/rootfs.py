"""Is a directory a usable root filesystem? Paths resolved inside it, as the kernel would
once it is the container's `/` (runc's securejoin, openat2's RESOLVE_IN_ROOT).

Used by the host (`sbx run --rootfs`, refused before anything is written) and by the guest
agent (CreateContainer), so a rootfs that cannot run its command is an error, never a
silent fall back to another root.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_LINKS = 40  # the kernel's own limit (ELOOP)


class RootfsError(ValueError):
    """A root filesystem that is missing, empty, or lacks the command to run."""


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path of `path` as seen with `root` as `/`: absolute symlinks restart at
    root, `..` never climbs above it. The last component may be missing."""
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            done.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise RootfsError(f"{path!r}: too many levels of symbolic links in {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p not in ("", ".")] + todo
    return root.joinpath(*done)


def _is_program(path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def find_program(root: Path, program: str, env: list[str], cwd: str = "/") -> Path | None:
    """Where `program` is found in root: a path (relative to cwd) or a name on the env's
    PATH (the default PATH without one), every lookup resolved inside root."""
    if "/" in program:
        return resolved if _is_program(
            resolved := resolve_in_root(root, posixpath.join(cwd or "/", program))) else None
    search = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), DEFAULT_PATH)
    for directory in search.split(":"):
        candidate = resolve_in_root(root, posixpath.join(directory or ".", program))
        if _is_program(candidate):
            return candidate
    return None


def check_rootfs(root: Path, args: list[str], env: list[str], cwd: str = "/",
                 what: str = "rootfs") -> None:
    """RootfsError unless root is a non-empty directory that holds args[0]."""
    if not root.is_dir():
        raise RootfsError(f"{what} {str(root)!r} is not a directory")
    if not any(os.scandir(root)):
        raise RootfsError(f"{what} {str(root)!r} is empty")
    if not args:
        raise RootfsError(f"{what} {str(root)!r}: no command to run")
    if find_program(root, args[0], env, cwd) is None:
        raise RootfsError(f"{what} {str(root)!r} has no executable {args[0]!r} "
                          f"(looked up inside the rootfs)")
