"""Mounts through the kernel's mount syscalls directly; /proc/self/mountinfo is the truth.

Targets are opened with O_PATH|O_NOFOLLOW one component at a time and mounted through that
fd, so a symlink swapped in between the check and the mount cannot redirect a bind mount
outside the sandbox directory.

Bind mounts use open_tree/mount_setattr/move_mount (Linux >= 5.12): the clone is made
read-only *before* it is attached. The classic bind then MS_REMOUNT|MS_RDONLY leaves a
window in which a writable copy has already propagated to slaves (such as shared/), and
that copy stays writable for good.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# new mount API (syscall numbers are the same on every architecture but alpha)
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 0x1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_MOUNT_ATTR_RDONLY = 0x1

_PROPAGATION = {
    "private": MS_PRIVATE,
    "slave": MS_SLAVE,
    "shared": MS_SHARED,
    "unbindable": MS_UNBINDABLE,
}
_PROPAGATION.update({"r" + name: flag | MS_REC for name, flag in list(_PROPAGATION.items())})

_FLAG_WORDS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}

_MAX_STACKED = 1000  # bound on the unmount loop; no sane host stacks more on one path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class MountError(OSError):
    """A mount(2) or umount2(2) call failed; says which operation, source and target."""

    def __init__(self, err: int, operation: str, source: str | None, target: str) -> None:
        where = f"{source!r} -> {target!r}" if source else repr(target)
        super().__init__(err, f"{operation} {where} failed: {os.strerror(err)}")
        self.operation = operation
        self.source = source
        self.target = target


class UnsafePath(ValueError):
    """A path that could redirect a host operation: a symlink, or one escaping its root."""


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo, with octal escapes decoded."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: tuple[str, ...]
    propagation: tuple[str, ...]  # optional fields: "shared:N", "master:N", "unbindable"
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def is_shared(self) -> bool:
        return any(tag.startswith("shared:") for tag in self.propagation)

    @property
    def is_slave(self) -> bool:
        return any(tag.startswith("master:") for tag in self.propagation)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> str:
    return os.fsdecode(_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), field))


def _parse_line(line: bytes) -> MountInfo:
    fields = line.split(b" ")
    sep = fields.index(b"-", 6)
    return MountInfo(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        root=_unescape(fields[3]),
        mount_point=_unescape(fields[4]),
        options=tuple(fields[5].decode().split(",")),
        propagation=tuple(f.decode() for f in fields[6:sep]),
        fstype=_unescape(fields[sep + 1]),
        source=_unescape(fields[sep + 2]),
        super_options=tuple(_unescape(fields[sep + 3]).split(",")),
    )


def mount_table() -> list[MountInfo]:
    """Every mount of this process's namespace, in mountinfo order (parents first)."""
    with open("/proc/self/mountinfo", "rb") as f:
        return [_parse_line(line.rstrip(b"\n")) for line in f if line.strip()]


def _norm(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def mounts_under(prefix: str | os.PathLike[str]) -> list[MountInfo]:
    """Mounts at or below prefix (symlinks in prefix resolved), in mountinfo order."""
    base = _norm(prefix)
    inside = base.rstrip("/") + "/"
    return [m for m in mount_table() if m.mount_point == base or m.mount_point.startswith(inside)]


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """True when something is mounted exactly at path."""
    target = _norm(path)
    return any(m.mount_point == target for m in mount_table())


def _call_mount(operation: str, source: str | None, target: str, shown_target: str,
                fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        os.fsencode(source) if source is not None else None,
        os.fsencode(target),
        os.fsencode(fstype) if fstype is not None else None,
        flags,
        os.fsencode(data) if data is not None else None,
    )
    if rc != 0:
        raise MountError(ctypes.get_errno(), operation, source, shown_target)


def _walk_nofollow(root: str, target: str) -> int:
    """Open the parent directory of target below root without following any symlink."""
    rel = os.path.relpath(target, root)
    parts = [] if rel == "." else rel.split(os.sep)
    if parts and parts[0] == "..":
        raise UnsafePath(f"mount target {target!r} escapes its root {root!r}")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(f"mount target {target!r}: a parent below {root!r} is a "
                             f"symlink or not a directory") from exc
        raise
    return fd


def _open_leaf(parent_fd: int, name: str, target: str) -> int:
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except FileNotFoundError as exc:
        raise MountError(errno.ENOENT, "open mount target", None, target) from exc
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"mount target {target!r} is a symlink")
    return fd


@contextmanager
def _safe_target(target: str | os.PathLike[str], within: str | os.PathLike[str] | None
                 ) -> Iterator[_Target]:
    path = os.path.abspath(os.fspath(target))
    root = os.path.abspath(os.fspath(within)) if within is not None else os.path.dirname(path)
    if path == root:
        raise UnsafePath(f"mount target {path!r} is its own root; mount below {root!r}")
    parent_fd = _walk_nofollow(root, path)
    try:
        yield _Target(path, parent_fd)
    finally:
        os.close(parent_fd)


class _Target:
    """A target pinned by its parent directory fd, checked for symlinks at every open."""

    def __init__(self, path: str, parent_fd: int) -> None:
        self.path = path
        self.parent_fd = parent_fd
        self.name = os.path.basename(path)

    def open_leaf(self) -> int:
        """An O_PATH fd of the target; after a mount, a new open lands on the top mount."""
        return _open_leaf(self.parent_fd, self.name, self.path)

    def mount(self, operation: str, source: str | None, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        fd = self.open_leaf()
        try:
            _call_mount(operation, source, f"/proc/self/fd/{fd}", self.path, fstype, flags, data)
        finally:
            os.close(fd)


def _propagation_flags(propagation: str | None) -> int:
    if propagation is None:
        return 0
    try:
        return _PROPAGATION[propagation]
    except KeyError:
        raise ValueError(f"unknown mount propagation {propagation!r}; "
                         f"expected one of {sorted(_PROPAGATION)}") from None


def _syscall(operation: str, source: str | None, target: str, nr: int, *args: object) -> int:
    rc = _libc.syscall(ctypes.c_long(nr), *args)
    if rc < 0:
        raise MountError(ctypes.get_errno(), operation, source, target)
    return rc


def _set_attr(tree_fd: int, *, recursive: bool, operation: str, source: str | None,
              target: str, attr_set: int = 0, propagation: int = 0) -> None:
    attr = _MountAttr(attr_set=attr_set, propagation=propagation)
    flags = _AT_EMPTY_PATH | (_AT_RECURSIVE if recursive else 0)
    _syscall(operation, source, target, _SYS_MOUNT_SETATTR, ctypes.c_int(tree_fd), b"",
             ctypes.c_uint(flags), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


def bind_mount(source: str | os.PathLike[str], target: str | os.PathLike[str], *,
               readonly: bool = False, recursive: bool = False, propagation: str | None = None,
               within: str | os.PathLike[str] | None = None) -> None:
    """Bind source onto an existing target that is not a symlink.

    With within (e.g. the runtime dir) no component between it and target may be a symlink.
    readonly applies to every mount of a recursive bind, and holds in propagated copies.
    """
    src = os.fspath(source)
    prop = _propagation_flags(propagation)
    shown = os.path.abspath(os.fspath(target))
    clone_flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | (_AT_RECURSIVE if recursive else 0)
    tree = _syscall("bind mount (clone)", src, shown, _SYS_OPEN_TREE, ctypes.c_int(_AT_FDCWD),
                    os.fsencode(src), ctypes.c_uint(clone_flags))
    try:
        if readonly:
            _set_attr(tree, recursive=recursive, operation="make read-only", source=src,
                      target=shown, attr_set=_MOUNT_ATTR_RDONLY)
        with _safe_target(target, within) as tgt:
            leaf = tgt.open_leaf()
            try:
                _syscall("bind mount", src, tgt.path, _SYS_MOVE_MOUNT, ctypes.c_int(tree), b"",
                         ctypes.c_int(leaf), b"",
                         ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH))
            finally:
                os.close(leaf)
        if prop:
            try:
                # after attaching: a mount attached under a shared parent is made shared
                _set_attr(tree, recursive=bool(prop & MS_REC), source=src, target=shown,
                          operation=f"set {propagation} propagation", propagation=prop & ~MS_REC)
            except MountError:
                unmount(shown)
                raise
    finally:
        os.close(tree)


def tmpfs_mount(target: str | os.PathLike[str], *, size: int | str | None = None,
                mode: int | None = None, options: Iterable[str] = (),
                within: str | os.PathLike[str] | None = None) -> None:
    """Mount a fresh tmpfs (shm-style); options may hold ro/nosuid/nodev/noexec or tmpfs data."""
    flags = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_WORDS:
            flags |= _FLAG_WORDS[opt]
        else:
            data.append(opt)
    if size is not None:
        data.append(f"size={size}")
    if mode is not None:
        data.append(f"mode={mode:o}")
    with _safe_target(target, within) as tgt:
        tgt.mount("tmpfs mount", "tmpfs", "tmpfs", flags, ",".join(data) or None)


def make_shared(path: str | os.PathLike[str]) -> None:
    """Make path a shared mount (binding it onto itself first) so later mounts propagate."""
    if not is_mounted(path):
        # recursive: mounts already below path stay visible through the self-bind
        bind_mount(path, path, recursive=True,
                   within=os.path.dirname(os.path.abspath(os.fspath(path))))
    with _safe_target(path, None) as tgt:
        tgt.mount("make shared", None, None, MS_SHARED)


def unmount(path: str | os.PathLike[str]) -> bool:
    """Detach every mount stacked on path; False when nothing was mounted there."""
    target = os.path.abspath(os.fspath(path))
    encoded = os.fsencode(target)
    done = False
    for _ in range(_MAX_STACKED):
        if _libc.umount2(encoded, MNT_DETACH | UMOUNT_NOFOLLOW) == 0:
            done = True
            continue
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return done
        raise MountError(err, "unmount", None, target)
    raise MountError(errno.EBUSY, f"unmount (still mounted after {_MAX_STACKED} tries)",
                     None, target)


def share_dir(mounts: str | os.PathLike[str], shared: str | os.PathLike[str]) -> None:
    """Expose mounts/ read-only at shared/, with later mounts under mounts/ showing up there.

    Idempotent: a shared/ that is already mounted is left as it is.
    """
    make_shared(mounts)
    if not is_mounted(shared):
        bind_mount(mounts, shared, readonly=True, recursive=True, propagation="slave")


def unshare_dir(mounts: str | os.PathLike[str], shared: str | os.PathLike[str]) -> None:
    """Undo share_dir: unmount shared/, then the self-bind of mounts/. Idempotent."""
    unmount(shared)
    unmount(mounts)
