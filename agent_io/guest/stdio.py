"""A process's stdio: three pipes, or the master of the pty runc made for a terminal."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios
import threading
from collections.abc import Callable

IsActive = Callable[[], bool]

_POLL_S = 0.25


class Stdio:
    """Parent ends of a process's stdio; `child_fds` are handed to the spawn then closed."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal
        self._locks = {"stdout": threading.Lock(), "stderr": threading.Lock()}
        self._stdin_lock = threading.Lock()
        self._eof: set[str] = set()
        self._closed = False
        self.child_fds: tuple[int, ...] = ()
        self._fds: dict[str, int | None] = {"stdin": None, "stdout": None, "stderr": None}
        if not terminal:
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self._fds = {"stdin": in_w, "stdout": out_r, "stderr": err_r}
            self.child_fds = (in_r, out_w, err_w)

    def attach_terminal(self, master: int, rows: int, cols: int) -> None:
        """The pty master runc sent back over the console socket."""
        self._fds = {"stdin": master, "stdout": master, "stderr": None}
        if rows or cols:
            self._winsize(master, rows, cols)

    def close_child_ends(self) -> None:
        for fd in set(self.child_fds):
            os.close(fd)
        self.child_fds = ()

    def read(self, stream: str, size: int, is_active: IsActive, where: str) -> bytes:
        """Block until data, EOF (b"") or cancellation; return at most `size` bytes."""
        fd = self._fds[stream]
        if fd is None or stream in self._eof:
            return b""
        with self._locks[stream]:
            while is_active() and not self._closed:
                fd = self._fds[stream]
                if fd is None:
                    return b""
                ready, _, _ = select.select([fd], [], [], _POLL_S)
                if not ready:
                    continue
                try:
                    data = os.read(fd, max(1, size))
                except OSError as exc:
                    if exc.errno != errno.EIO:  # EIO: pty slave closed, i.e. EOF
                        raise OSError(exc.errno, f"{where}: read {stream}: {exc.strerror}") from exc
                    data = b""
                if not data:
                    self._eof.add(stream)
                return data
            return b""

    def write_stdin(self, data: bytes, where: str) -> int:
        with self._stdin_lock:
            fd = self._fds["stdin"]
            if fd is None or "stdin" in self._eof:
                raise BrokenPipeError(f"{where}: stdin is closed")
            view, written = memoryview(data), 0
            while written < len(view):
                written += os.write(fd, view[written:])
            return written

    def close_stdin(self) -> None:
        """Pipes: close the write end. A pty: send EOT, the terminal's end of input."""
        with self._stdin_lock:
            if "stdin" in self._eof:
                return
            self._eof.add("stdin")
            fd = self._fds["stdin"]
            if self.terminal and fd is not None:
                try:
                    os.write(fd, b"\x04")
                except OSError:
                    pass
            elif fd is not None:
                os.close(fd)
                self._fds["stdin"] = None

    def resize(self, rows: int, cols: int, where: str) -> None:
        if not self.terminal:
            raise ValueError(f"{where}: process has no terminal to resize")
        self._winsize(self._fds["stdout"], rows, cols)

    @staticmethod
    def _winsize(fd: int | None, rows: int, cols: int) -> None:
        assert fd is not None, "a terminal process has a stdout fd"
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        """Release every parent end (after the process is gone and forgotten).

        Readers notice `_closed` within one poll interval; the fds are closed only once
        they have let go of their stream, so no reader ever selects on a closed fd.
        """
        self._closed = True
        with self._locks["stdout"], self._locks["stderr"], self._stdin_lock:
            self._close_fds()

    def _close_fds(self) -> None:
        for fd in {fd for fd in self._fds.values() if fd is not None}:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {k: None for k in self._fds}
