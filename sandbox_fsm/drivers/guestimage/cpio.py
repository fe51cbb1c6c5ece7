"""A writer for the kernel's initramfs format (cpio "newc"), with no host tools.

Written here rather than driving cpio(1) so the archive holds exactly the entries we
list, owned by root, with device nodes (/dev/console) that we could not mknod as files,
and in a fixed order: the same inputs give the same bytes.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


class CpioWriter:
    """Append entries to an open binary file; `close()` writes the trailer."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._ino = 0

    def _header(self, name: str, mode: int, size: int, *, mtime: int = 0,
                rdev: tuple[int, int] = (0, 0), nlink: int = 1) -> None:
        self._ino += 1
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1],
                  len(encoded), 0)
        head = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(head + encoded)
        self._pad(len(head) + len(encoded))

    def _pad(self, written: int) -> None:
        self._out.write(b"\0" * (-written % 4))

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._header(name, stat.S_IFDIR | mode, 0, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644, *, mtime: int = 0) -> None:
        self._header(name, stat.S_IFREG | mode, len(data), mtime=mtime)
        self._out.write(data)
        self._pad(len(data))

    def copy(self, name: str, source: str | os.PathLike[str]) -> None:
        """A regular file from the host, keeping its permission bits and mtime (the
        stdlib's timestamp-checked .pyc files compare the source's mtime)."""
        st = os.stat(source)
        with open(source, "rb") as f:
            data = f.read()
        self.file(name, data, stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime))

    def symlink(self, name: str, target: str) -> None:
        data = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(data))
        self._out.write(data)
        self._pad(len(data))

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._header(name, stat.S_IFCHR | mode, 0, rdev=(major, minor))

    def close(self) -> None:
        self._header(_TRAILER, 0, 0, nlink=1)
