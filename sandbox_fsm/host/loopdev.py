"""Loop devices: a block image attached to the host kernel, named by a tag we gave it.

The process and namespaces drivers have no hypervisor to hot-plug a block device into, so a
block rootfs or volume becomes a loop device. Every device we attach carries a tag in the
kernel's own record of it (`lo_file_name` of `struct loop_info64`, set by LOOP_CONFIGURE),
recorded in the step's intent before the attach. After a crash, recovery asks the kernel
which loop devices carry a tag of ours and detaches exactly those: never a device found by
its backing file alone, which another user may have attached too.

Attach is one LOOP_CONFIGURE ioctl (Linux >= 5.8): the backing file, read-only flag and tag
are set atomically, so no half-configured device is ever visible.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

LOOP_CLR_FD = 0x4C01
LOOP_GET_STATUS64 = 0x4C05
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_READ_ONLY = 1
LO_NAME_SIZE = 64
TAG_PREFIX = "sbx:"
_SYS_BLOCK = Path("/sys/block")
_ATTACH_TRIES = 16   # another process may take the free device between GET_FREE and CONFIGURE


class _LoopInfo64(ctypes.Structure):
    _fields_ = [
        ("lo_device", ctypes.c_uint64), ("lo_inode", ctypes.c_uint64),
        ("lo_rdevice", ctypes.c_uint64), ("lo_offset", ctypes.c_uint64),
        ("lo_sizelimit", ctypes.c_uint64), ("lo_number", ctypes.c_uint32),
        ("lo_encrypt_type", ctypes.c_uint32), ("lo_encrypt_key_size", ctypes.c_uint32),
        ("lo_flags", ctypes.c_uint32), ("lo_file_name", ctypes.c_char * LO_NAME_SIZE),
        ("lo_crypt_name", ctypes.c_char * LO_NAME_SIZE),
        ("lo_encrypt_key", ctypes.c_char * 32), ("lo_init", ctypes.c_uint64 * 2),
    ]


class _LoopConfig(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_uint32), ("block_size", ctypes.c_uint32),
                ("info", _LoopInfo64), ("reserved", ctypes.c_uint64 * 8)]


class LoopError(OSError):
    """A loop ioctl failed; says which device or image and why."""


@dataclass(frozen=True)
class LoopDevice:
    """An attached loop device as the kernel reports it."""

    path: str            # /dev/loopN
    backing_file: str    # what /sys/block/loopN/loop/backing_file says
    tag: str             # the name we gave it at attach
    read_only: bool


def make_tag(owner: str, device_id: str) -> str:
    """The tag of a device: who owns it and the id recorded in the intent (<= 63 bytes)."""
    tag = f"{TAG_PREFIX}{owner}:{device_id}"
    if len(tag.encode()) >= LO_NAME_SIZE:
        raise ValueError(f"loop device tag {tag!r} is longer than {LO_NAME_SIZE - 1} bytes")
    return tag


def attach(image: str | os.PathLike[str], tag: str, *, read_only: bool = False) -> LoopDevice:
    """Attach image to a free loop device under tag; refuse a tag already attached."""
    if find(tag):
        raise LoopError(errno.EEXIST, f"a loop device tagged {tag!r} is already attached")
    flags = os.O_RDONLY if read_only else os.O_RDWR
    backing = os.open(image, flags | os.O_CLOEXEC | os.O_NOFOLLOW)  # a symlink is refused
    try:
        config = _LoopConfig(fd=backing)
        config.info.lo_flags = LO_FLAGS_READ_ONLY if read_only else 0
        config.info.lo_file_name = tag.encode()
        for _ in range(_ATTACH_TRIES):
            path = _free_device()
            dev = os.open(path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
            try:
                fcntl.ioctl(dev, LOOP_CONFIGURE, config)
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    continue        # taken by someone else since GET_FREE: ask again
                raise LoopError(exc.errno, f"attach {os.fspath(image)!r} to {path}: "
                                f"{os.strerror(exc.errno or 0)}") from exc
            finally:
                os.close(dev)
            return LoopDevice(path, _backing_file(path), tag, read_only)
        raise LoopError(errno.EBUSY, f"no free loop device for {os.fspath(image)!r}")
    finally:
        os.close(backing)


def detach(tag: str) -> bool:
    """Detach the device carrying tag; False when none does ("already gone" is success).

    A device still mounted is marked to detach at its last close (the kernel's autoclear).
    """
    gone = True
    for dev in find(tag):
        try:
            fd = os.open(dev.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if _tag_of(fd) != tag:      # rebound to someone else's image since the scan
                continue
            fcntl.ioctl(fd, LOOP_CLR_FD)
            gone = False
        except OSError as exc:
            if exc.errno != errno.ENXIO:    # ENXIO: not bound any more
                raise LoopError(exc.errno, f"detach {dev.path} ({tag}): "
                                f"{os.strerror(exc.errno or 0)}") from exc
        finally:
            os.close(fd)
    return not gone


def find(tag_prefix: str = TAG_PREFIX) -> list[LoopDevice]:
    """Bound loop devices whose tag starts with tag_prefix, as the kernel reports them now."""
    found = []
    for entry in sorted(_SYS_BLOCK.glob("loop*")):
        if not (entry / "loop").is_dir():
            continue                    # not bound
        path = f"/dev/{entry.name}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            tag = _tag_of(fd)
            ro = bool(_status(fd).lo_flags & LO_FLAGS_READ_ONLY)
        except OSError:
            continue                    # unbound between the scan and the ioctl
        finally:
            os.close(fd)
        if tag.startswith(tag_prefix):
            found.append(LoopDevice(path, _backing_file(path), tag, ro))
    return found


def _free_device() -> str:
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        number = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
    finally:
        os.close(ctl)
    return f"/dev/loop{number}"


def _status(fd: int) -> _LoopInfo64:
    info = _LoopInfo64()
    fcntl.ioctl(fd, LOOP_GET_STATUS64, info)
    return info


def _tag_of(fd: int) -> str:
    return bytes(_status(fd).lo_file_name).split(b"\0", 1)[0].decode(errors="replace")


def _backing_file(path: str) -> str:
    try:
        return (_SYS_BLOCK / os.path.basename(path) / "loop" / "backing_file").read_text().strip()
    except OSError:
        return ""
