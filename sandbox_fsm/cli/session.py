"""Attach our terminal to a container process: stdio streaming, signals, exit status.

Signal handlers never raise into the main thread (an exception in the middle of an
operation would leave it open); they queue the signal and wake the main loop, which
forwards it to the process with `Runtime.kill` or, before the process runs, aborts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import SandboxError

if TYPE_CHECKING:
    from ..runtime import Runtime

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGPIPE_GRACE = 5.0


class Interrupted(Exception):
    """A signal arrived before the container process was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class SignalGate:
    """Queues SIGINT/SIGTERM/SIGHUP while installed; `wake` is set on each one."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.first: int | None = None
        self.resized = False
        self.pipe_broken = False
        self.kill_at: float | None = None
        self.wake = threading.Event()
        self._saved: dict[int, object] = {}

    def __enter__(self) -> SignalGate:
        for sig in FORWARDED:
            self._saved[sig] = signal.signal(sig, self._on_signal)
        self._saved[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_resize)
        return self

    def _on_resize(self, signum: int, frame: object) -> None:
        self.resized = True
        self.wake.set()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: object) -> None:
        self.pending.append(signum)
        if self.first is None:
            self.first = signum
        self.wake.set()

    def check(self) -> None:
        """Between setup steps: abort if a signal arrived."""
        if self.first is not None:
            raise Interrupted(self.first)

    def broken_pipe(self) -> None:
        """Whoever read our stdout or stderr went away: the process gets SIGPIPE now, and
        SIGKILL after SIGPIPE_GRACE if it ignores it (nobody reads its output any more)."""
        if not self.pipe_broken:
            self.pipe_broken = True
            self.kill_at = time.monotonic() + SIGPIPE_GRACE
            self.pending.append(signal.SIGPIPE)
            self.wake.set()

    def overdue(self) -> float | None:
        """Seconds until a process that ignored SIGPIPE is killed (None: nothing pending)."""
        if self.kill_at is None:
            return None
        left = self.kill_at - time.monotonic()
        if left > 0:
            return left
        self.pending.append(signal.SIGKILL)
        self.kill_at = None
        return None

    def take(self) -> list[int]:
        taken, self.pending[:] = list(self.pending), []
        return taken


def _pump(read: Callable[[], bytes], out: int, gate: SignalGate) -> None:
    """Copy a process stream to our fd until EOF (empty bytes), or until our reader goes
    away: then stop reading and let the process have SIGPIPE, as a shell pipeline does."""
    while True:
        try:
            data = read()
        except Exception:  # noqa: BLE001 - the guest or the process went away: stream ended
            return
        if not data:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(out, view):]
        except BrokenPipeError:
            gate.broken_pipe()
            return
        except OSError:
            continue  # e.g. EIO on a hung-up terminal: the process still runs, keep going


def _feed(rt: Runtime, sid: str, cid: str, exec_id: str | None) -> None:
    """Forward our stdin to the process; close its stdin at our EOF."""
    try:
        while data := os.read(sys.stdin.fileno(), 65536):
            rt.write_stdin(sid, cid, data, exec_id)
        rt.close_stdin(sid, cid, exec_id)
    except Exception:  # noqa: BLE001 - the process exited first; nothing left to feed
        return


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """With -t and a tty on stdin, pass keystrokes through unprocessed; restore after."""
    fd = sys.stdin.fileno() if enabled else -1
    if fd < 0 or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _resize(rt: Runtime, sid: str, cid: str, exec_id: str | None) -> None:
    """Give the process's terminal our window size (nothing to give without a tty)."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return
    with contextlib.suppress(SandboxError):
        rt.tty_resize(sid, cid, size.lines, size.columns, exec_id)


def attach(rt: Runtime, gate: SignalGate, sid: str, cid: str, exec_id: str | None = None, *,
           interactive: bool = False, terminal: bool = False) -> int:
    """Stream the process's stdio until it exits; forward queued signals; return its status."""
    pumps = [threading.Thread(target=_pump, daemon=True, name="stdout", args=(
        lambda: rt.read_stdout(sid, cid, exec_id), sys.stdout.fileno(), gate))]
    if not terminal:
        pumps.append(threading.Thread(target=_pump, daemon=True, name="stderr", args=(
            lambda: rt.read_stderr(sid, cid, exec_id), sys.stderr.fileno(), gate)))
    if interactive:
        threading.Thread(target=_feed, args=(rt, sid, cid, exec_id), daemon=True,
                         name="stdin").start()
    sys.stdout.flush()
    for pump in pumps:
        pump.start()
    result: dict[str, object] = {}

    def waiter() -> None:
        try:
            result["status"] = rt.wait(sid, cid, exec_id)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            result["error"] = exc
        gate.wake.set()

    threading.Thread(target=waiter, daemon=True, name="wait").start()
    gate.resized = terminal   # the process's terminal starts at our size, as runc's does
    with raw_terminal(terminal and interactive):
        _supervise(rt, gate, result, sid, cid, exec_id)
    for pump in pumps:
        pump.join(5.0)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return int(result["status"])  # type: ignore[call-overload]


def _supervise(rt: Runtime, gate: SignalGate, result: dict[str, object], sid: str, cid: str,
               exec_id: str | None) -> None:
    """Until the process exits: follow our window size and forward queued signals."""
    while not result:
        if gate.resized:
            gate.resized = False
            _resize(rt, sid, cid, exec_id)
        gate.wake.wait(gate.overdue())
        gate.wake.clear()
        gate.overdue()
        for signum in gate.take():
            with contextlib.suppress(SandboxError):
                rt.kill(sid, cid, signum, exec_id=exec_id)
