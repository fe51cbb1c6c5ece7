"""The terminal of a process: a pty whose master goes to the client over its console
socket (SCM_RIGHTS, as runc sends it) and whose slave the shim relays to the guest."""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios
import tty


class ConsoleError(OSError):
    """The console socket could not take the terminal."""


def send_console(socket_path: str) -> int:
    """Make a pty, send its master over `socket_path`, return the slave (ours to keep)."""
    master, slave = os.openpty()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(socket_path)
            name = os.ttyname(slave).encode()
            fds = array.array("i", [master])
            sock.sendmsg([name], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    except OSError as exc:
        os.close(slave)
        raise ConsoleError(exc.errno, f"console socket {socket_path!r}: {exc.strerror}") \
            from None
    finally:
        os.close(master)
    return slave


def take_terminal(fd: int) -> None:
    """In the shim (a session leader): make `fd` our controlling terminal, so a resize of
    the client's master reaches us as SIGWINCH, and pass bytes through unprocessed (the
    guest's terminal does the line discipline)."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    tty.setraw(fd)


def window_size(fd: int) -> tuple[int, int]:
    """(rows, columns) of the terminal on `fd`."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols
