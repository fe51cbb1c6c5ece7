"""Processes named by (pid, start time), so a recycled pid is never mistaken for ours.

Signals go through a pidfd opened *before* the identity check: once the pidfd is open it
pins that exact process, so the check and the kill cannot race with pid reuse.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_DEAD_STATES = frozenset("ZXx")
_LOG_TAIL_BYTES = 2048
_KILL_GRACE = 10.0  # seconds a SIGKILLed process may take to exit before we give up


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as recorded in the log: pid plus its start time in clock ticks since boot."""

    pid: int
    start_time: int


class ProcessDied(RuntimeError):
    """A process we were waiting on exited before it became ready."""


def _read_stat(pid: int) -> tuple[str, int] | None:
    """(state, start_time) from /proc/<pid>/stat, or None when there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) is in parentheses and may itself contain spaces and ')'.
    rest = raw[raw.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])  # fields 3 (state) and 22 (starttime)


def identity_of(pid: int) -> ProcessIdentity | None:
    """The identity of the live or zombie process with this pid, if any."""
    stat = _read_stat(pid)
    return None if stat is None else ProcessIdentity(pid, stat[1])


def is_alive(ident: ProcessIdentity) -> bool:
    """True when the pid exists, started at the recorded time, and is not a zombie."""
    stat = _read_stat(ident.pid)
    return stat is not None and stat[1] == ident.start_time and stat[0] not in _DEAD_STATES


def _open_pidfd(ident: ProcessIdentity) -> int | None:
    """A pidfd for ident, or None when it is gone, a zombie, or the pid was recycled."""
    try:
        fd = os.pidfd_open(ident.pid)
    except ProcessLookupError:
        return None
    if is_alive(ident):
        return fd
    os.close(fd)
    return None


def _send(fd: int, sig: int) -> bool:
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    return True


def signal_process(ident: ProcessIdentity, sig: int) -> bool:
    """Send sig to ident; False, with nothing sent, when it is gone or its pid was reused."""
    fd = _open_pidfd(ident)
    if fd is None:
        return False
    try:
        return _send(fd, sig)
    finally:
        os.close(fd)


def kill(ident: ProcessIdentity, *, timeout: float = _KILL_GRACE) -> bool:
    """SIGKILL at once (for a process whose SIGTERM would mean something else, as a shim
    forwards it) and wait for the exit; False when it was already gone."""
    fd = _open_pidfd(ident)
    if fd is None:
        return False
    try:
        if _send(fd, signal.SIGKILL) and not _wait_exit(fd, timeout):
            raise TimeoutError(f"process {ident.pid} (start time {ident.start_time}) "
                               f"still alive {timeout}s after SIGKILL")
    finally:
        os.close(fd)
    _reap(ident)
    return True


def _wait_exit(fd: int, timeout: float) -> bool:
    """Wait until the pidfd's process has exited (it becomes readable then)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def terminate(ident: ProcessIdentity, *, timeout: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after timeout; True if we stopped it, False if already gone.

    Reaps it when it is a child spawned here, so no zombie stays behind.
    """
    fd = _open_pidfd(ident)
    if fd is None:
        reap_children()
        return False
    try:
        if _send(fd, signal.SIGTERM) and not _wait_exit(fd, timeout):
            _send(fd, signal.SIGKILL)
            if not _wait_exit(fd, _KILL_GRACE):
                raise TimeoutError(f"process {ident.pid} (start time {ident.start_time}) "
                                   f"still alive {_KILL_GRACE}s after SIGKILL")
    finally:
        os.close(fd)
    _reap(ident)
    return True


def wait_exit(ident: ProcessIdentity, timeout: float) -> bool:
    """Wait up to timeout for ident to exit (reaping it when it is our child); True if gone."""
    fd = _open_pidfd(ident)
    if fd is None:
        reap_children()
        return True
    try:
        if not _wait_exit(fd, timeout):
            return False
    finally:
        os.close(fd)
    _reap(ident)
    return True


@dataclass
class _Child:
    popen: subprocess.Popen[bytes]
    log_path: str | None


_children: dict[ProcessIdentity, _Child] = {}
_children_lock = threading.Lock()


def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None, log_path: str | os.PathLike[str] | None = None,
          pass_fds: Sequence[int] = ()) -> ProcessIdentity:
    """Start argv in its own session, stdout+stderr appended to log_path; kept for reaping."""
    log = os.fspath(log_path) if log_path is not None else None
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, pass_fds=tuple(pass_fds),
            start_new_session=True, close_fds=True,
        )
    finally:
        if not isinstance(out, int):
            out.close()
    ident = identity_of(popen.pid)  # unreaped, so /proc/<pid> exists even if it already exited
    if ident is None:
        raise RuntimeError(f"spawned pid {popen.pid} ({argv[0]!r}) has no /proc entry")
    with _children_lock:
        _children[ident] = _Child(popen, log)
    return ident


def _reap(ident: ProcessIdentity) -> None:
    with _children_lock:
        child = _children.pop(ident, None)
    if child is not None:
        child.popen.wait()


def reap_children() -> list[ProcessIdentity]:
    """Collect every spawned child that has exited; returns the ones reaped."""
    with _children_lock:
        done = [ident for ident, child in _children.items() if child.popen.poll() is not None]
        for ident in done:
            del _children[ident]
    return done


def _log_tail(log_path: str | None) -> str:
    if log_path is None:
        return ""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
            tail = f.read().decode(errors="replace")
    except OSError as exc:
        return f"\n(log {log_path} unreadable: {exc})"
    return f"\n--- last lines of {log_path} ---\n{tail}"


def _ready(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        return True
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True


def wait_for_path(path: str | os.PathLike[str], *, timeout: float,
                  ident: ProcessIdentity | None = None,
                  log_path: str | os.PathLike[str] | None = None) -> None:
    """Wait for path to appear, and if it is a socket, to accept connections.

    Fails fast when ident dies first; a stale socket left by a killed predecessor does not
    count as ready. Errors carry the tail of log_path (default: ident's spawn log).
    """
    target = os.fspath(path)
    if log_path is None and ident is not None:
        with _children_lock:
            child = _children.get(ident)
        log_path = child.log_path if child is not None else None
    log = os.fspath(log_path) if log_path is not None else None
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not _ready(target):
        if ident is not None and not is_alive(ident):
            raise ProcessDied(f"process {ident.pid} exited before {target!r} appeared"
                              f"{_log_tail(log)}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{target!r} did not appear within {timeout}s"
                               f"{_log_tail(log)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
