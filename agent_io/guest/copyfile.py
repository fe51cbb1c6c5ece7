"""CopyFile: offset-addressed chunks into a temp file, renamed into place when complete."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agent_io import messages as m
from agent_io.guest.paths import PathRefused, confined


class CopyError(ValueError):
    """A CopyFile request that does not fit the file being assembled."""


class FileCopier:
    """Writes copied files only inside `root` (absolute request paths are relative to it)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()

    def chunk(self, req: m.agent.CopyFileRequest) -> None:
        where = f"CopyFile {req.path!r}"
        if not req.path.startswith("/"):
            raise PathRefused(f"{where}: path must be absolute")
        if req.file_size < 0 or req.offset < 0:
            raise CopyError(f"{where}: negative file_size {req.file_size} or offset {req.offset}")
        if req.offset + len(req.data) > req.file_size:
            raise CopyError(
                f"{where}: chunk at offset {req.offset} of {len(req.data)} bytes "
                f"exceeds file_size {req.file_size}"
            )
        target = confined(self._root, req.path, where)
        if target == self._root.resolve():
            raise PathRefused(f"{where}: path names the guest dir itself")
        with self._lock:
            self._parents(target.parent, req.dir_mode, where)
            target = confined(self._root, req.path, where)  # re-check after creating parents
            tmp = target.parent / f".{target.name}.copy-tmp"
            flags = (os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
                     | (os.O_TRUNC if req.offset == 0 else 0))
            fd = os.open(tmp, flags, 0o600)
            try:
                os.pwrite(fd, req.data, req.offset)
                size = os.fstat(fd).st_size
                if size < req.file_size:
                    return
                os.ftruncate(fd, req.file_size)
                os.fchmod(fd, req.file_mode & 0o7777)
                if os.geteuid() == 0:
                    os.fchown(fd, req.uid, req.gid)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)

    def _parents(self, directory: Path, dir_mode: int, where: str) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir()
            d.chmod(dir_mode & 0o7777 or 0o755)
            if not d.resolve().is_relative_to(self._root.resolve()):
                raise PathRefused(f"{where}: parent {d} leaves the guest dir")
