"""Where a sandbox lives on the host, and the safe creation and removal of those directories.

Ids become path components, so they are validated before any path is built from them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
from pathlib import Path

from .mounts import UnsafePath, mounts_under

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_BASENAME = 64
# sun_path holds 108 bytes with the NUL; the longest socket name we put in a socket dir.
SUN_PATH_MAX = 107
_LONGEST_SOCKET = "proxy.sock"


class InvalidId(ValueError):
    """An id that cannot safely name a directory."""


class StillMounted(OSError):
    """A directory cannot be removed because something is still mounted below it."""


def validate_id(value: object, kind: str = "sandbox id") -> str:
    """Return value when it matches ID_PATTERN; raise InvalidId naming kind and value."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidId(f"invalid {kind} {value!r}: must match {ID_PATTERN} "
                        f"(1-128 letters, digits, '_', '.', '-'; starting with a letter or digit)")
    return value


class SandboxLayout:
    """The directories and sockets of one sandbox under <runtime_dir>/sandboxes/<id>."""

    def __init__(self, runtime_dir: str | os.PathLike[str], sandbox_id: str) -> None:
        self.sandbox_id = validate_id(sandbox_id, "sandbox id")
        self.runtime_dir = Path(os.path.abspath(runtime_dir))
        self.root = self.runtime_dir / "sandboxes" / self.sandbox_id
        self.mounts = self.root / "mounts"
        self.shared = self.root / "shared"
        self.guest_dir = self.root / "guest"
        self.sock_dir = socket_dir(self.runtime_dir, self.sandbox_id)
        self.agent_socket = self.sock_dir / "agent.sock"
        self.proxy_socket = self.sock_dir / "proxy.sock"
        self.log_dir = self.root / "log"

    def __repr__(self) -> str:
        return f"SandboxLayout({str(self.runtime_dir)!r}, {self.sandbox_id!r})"

    def container_dir(self, cid: str) -> Path:
        return self.mounts / validate_id(cid, "container id")

    def rootfs_target(self, cid: str) -> Path:
        return self.container_dir(cid) / "rootfs"

    def volume_target(self, cid: str, destination: str) -> Path:
        """A fresh, unique name under mounts/ for a volume mounted at destination in cid."""
        base = _UNSAFE_NAME_CHARS.sub("_", os.path.basename(destination.rstrip("/")))
        base = base[:_MAX_BASENAME].strip(".") or "volume"
        name = f"{validate_id(cid, 'container id')}-{secrets.token_hex(4)}-{base}"
        return self.mounts / name


def short_socket_base(euid: int | None = None) -> Path:
    """Where socket dirs go when the runtime dir is too long to hold them."""
    euid = os.geteuid() if euid is None else euid
    return Path("/run/sbx-sock") if euid == 0 else Path(f"/tmp/sbx-sock-{euid}")


def socket_dir(runtime_dir: Path, sandbox_id: str) -> Path:
    """The sandbox's socket dir, named by a hash so that its length does not depend on the
    id: `<runtime_dir>/sock/<16 hex>`, or, when even that passes the 107-byte limit of a
    unix socket path, `<short base>/<16 hex of runtime dir and id>`."""
    digest = hashlib.sha256(sandbox_id.encode()).hexdigest()[:16]
    inside = runtime_dir / "sock" / digest
    if len(os.fsencode(inside / _LONGEST_SOCKET)) <= SUN_PATH_MAX:
        return inside
    key = f"{runtime_dir}\0{sandbox_id}".encode()
    return short_socket_base() / hashlib.sha256(key).hexdigest()[:16]


def _refuse_unsafe_ancestors(path: Path) -> None:
    """Anyone who can write to a parent without the sticky bit, or who owns it, can swap
    what is below it: only root's and our own parents are trusted."""
    for parent in path.parents:
        try:
            st = os.stat(parent)
        except FileNotFoundError:
            continue
        if st.st_uid not in (0, os.geteuid()):
            raise UnsafePath(f"{str(path)!r}: parent {str(parent)!r} is owned by uid "
                             f"{st.st_uid}, neither root nor us")
        if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP) and not st.st_mode & stat.S_ISVTX:
            raise UnsafePath(f"{str(path)!r}: parent {str(parent)!r} is group- or "
                             f"world-writable without the sticky bit "
                             f"(mode {stat.S_IMODE(st.st_mode):o})")


def _check_own_dir(path: Path, what: str) -> os.stat_result:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{what} {str(path)!r} is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{what} {str(path)!r} is not a directory")
    if st.st_uid != os.geteuid():
        raise UnsafePath(f"{what} {str(path)!r} is owned by uid {st.st_uid}, "
                         f"not by us (uid {os.geteuid()})")
    return st


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """mkdir -p: what it creates is 0700; refuses symlinks, foreign owners, unsafe parents.

    An existing directory keeps its mode: it may be someone else's choice (`/run`, `/tmp`
    given as a parent), so it is never chmod'ed; one that others may write to is refused.
    """
    target = Path(os.path.abspath(path))
    _refuse_unsafe_ancestors(target)
    missing = []
    probe = target
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue  # created concurrently: checked below like any existing dir
        _check_own_dir(d, "private dir")
        os.chmod(d, 0o700, follow_symlinks=False)  # ours: whatever the umask left
    st = _check_own_dir(target, "private dir")
    if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
        raise UnsafePath(f"private dir {str(target)!r} is writable by group or others "
                         f"(mode {stat.S_IMODE(st.st_mode):o}); it is not ours to change")
    return target


def check_socket_dir(path: str | os.PathLike[str]) -> None:
    """Refuse to put sockets in a directory others can write to (or swap by symlink)."""
    target = Path(os.path.abspath(path))
    st = _check_own_dir(target, "socket dir")
    if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
        raise UnsafePath(f"socket dir {str(target)!r} is writable by group or others "
                         f"(mode {stat.S_IMODE(st.st_mode):o})")
    _refuse_unsafe_ancestors(target)


def remove_tree(path: str | os.PathLike[str]) -> bool:
    """Delete a sandbox directory without following symlinks; False when already gone.

    Refuses while anything is mounted below it: deleting through a bind mount would
    destroy the host files it exposes (a rootfs, a volume).
    """
    target = Path(os.path.abspath(path))
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"refusing to remove {str(target)!r}: it is a symlink")
    busy = mounts_under(target)
    if busy:
        points = ", ".join(m.mount_point for m in busy)
        raise StillMounted(errno.EBUSY, f"refusing to remove {str(target)!r}: "
                                        f"still mounted below it: {points}")
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(target)
        return True
    shutil.rmtree(target)  # fd-based walk: never follows symlinks (avoids_symlink_attacks)
    return True


def listen_private(path: str) -> socket.socket:
    """A unix socket listening on path, created with mode 0600 (no window with a looser one)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock
