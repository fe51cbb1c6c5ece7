"""The start gate of an init shim: the process does not exist in the guest before
StartContainer, so the shim created with the container waits until `start`, as runc's
init waits on its exec.fifo.

The gate is a FIFO that the shim inherits already open for reading and writing (so its
read blocks until a byte arrives, and `start` never waits for the shim to be ready);
`start` opens it write-only without blocking, which fails with ENXIO once the shim, its
only reader, is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os


def open_gate(path: str) -> int:
    """Make the FIFO (mode 0600) if needed; a descriptor for the shim to inherit."""
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)


def release(path: str) -> bool:
    """Let the shim start relaying; False when no shim holds the gate any more."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, b"s")
    finally:
        os.close(fd)
    return True


def wait_released(fd: int) -> None:
    """In the shim: block until `release`, then close the gate."""
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)
