"""runc's --console-socket: runc makes the terminal and sends its master end back.

The socket lives in the container's private 0700 bundle directory, where runc works, and
runc is given its short relative name: the path stays far below the 108-byte limit of
unix socket paths whatever the ids and the guest dir are.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
from pathlib import Path

_counter = itertools.count()
TIMEOUT_S = 10.0


class ConsoleSocket:
    """One listening socket that receives exactly one pty master."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = f"c{os.getpid()}-{next(_counter)}.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        old = os.umask(0o177)
        try:  # bound through the dir's fd: a short path, however deep the directory is
            self._sock.bind(f"/proc/self/fd/{dir_fd}/{self.name}")
        finally:
            os.umask(old)
            os.close(dir_fd)
        self._sock.listen(1)

    def receive(self, where: str) -> int:
        """The master fd runc sent (it already connected and sent before exiting)."""
        ready, _, _ = select.select([self._sock], [], [], TIMEOUT_S)
        if not ready:
            raise OSError(f"{where}: runc never sent the terminal on its console socket")
        conn, _ = self._sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise OSError(f"{where}: runc's console socket carried no file descriptor")
        os.set_inheritable(fds[0], False)
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        try:
            os.unlink(self.directory / self.name)
        except FileNotFoundError:
            pass
