"""The shim's loop: relay stdio between our fds 0/1/2 and the guest agent, forward the
signals we receive, wait for the process, and give back its exit status.

Signal handlers only queue (an rpc inside a handler could interrupt another on the same
channel); one thread forwards the queue with SignalProcess.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
from collections.abc import Callable

from agent_io import AgentClient, AgentError

from .console import window_size

log = logging.getLogger("sbx.shim")

LOST = 255        # exit status when the process's fate cannot be learnt (as containerd's)
DRAIN_S = 10.0    # after the exit, how long the output relays may take to reach EOF
# Signals that are about the shim itself, never forwarded (as runc's signal forwarder).
NOT_FORWARDED = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGPIPE,
                 signal.SIGKILL, signal.SIGSTOP}


class Relay:
    """One process of one container, as seen through `client`."""

    def __init__(self, client: AgentClient, container_id: str, exec_id: str, *,
                 terminal: bool) -> None:
        self.client, self.cid, self.eid, self.terminal = client, container_id, exec_id, terminal
        self.signals: queue.SimpleQueue[int] = queue.SimpleQueue()

    # -- signals ----------------------------------------------------------------------------

    def install_handlers(self) -> None:
        """Queue every forwardable signal (and window changes) from now on."""
        for sig in signal.Signals:
            if sig in NOT_FORWARDED and sig != signal.SIGWINCH:
                continue
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.put(signum)

    def _forward(self) -> None:
        while True:
            signum = self.signals.get()
            try:
                if signum == signal.SIGWINCH:
                    if self.terminal:
                        rows, cols = window_size(0)
                        self.client.tty_win_resize(self.cid, self.eid, rows, cols)
                else:
                    self.client.signal_process(self.cid, signum, self.eid)
            except (AgentError, OSError) as exc:
                log.warning("forwarding signal %d: %s", signum, exc)

    # -- stdio ------------------------------------------------------------------------------

    def _pump_out(self, read: Callable[[str, str], bytes], fd: int) -> None:
        """Copy a stream of the process to our fd until EOF, then close our fd."""
        try:
            while data := read(self.cid, self.eid):
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
        except (AgentError, OSError) as exc:
            log.info("output relay to fd %d ended: %s", fd, exc)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _pump_in(self) -> None:
        """Copy our fd 0 to the process; close its stdin at our EOF (not with a terminal:
        the client's side of a pty never ends before the process does)."""
        try:
            while data := os.read(0, 65536):
                self.client.write_stdin(self.cid, self.eid, data)
            if not self.terminal:
                self.client.close_stdin(self.cid, self.eid)
        except (AgentError, OSError) as exc:
            log.info("input relay ended: %s", exc)

    # -- the whole ---------------------------------------------------------------------------

    def run(self) -> int:
        """Relay until the process exits; its status (LOST if the guest cannot say)."""
        threading.Thread(target=self._forward, daemon=True, name="signals").start()
        if self.terminal:
            self.signals.put(signal.SIGWINCH)   # start at the client's size
        outs = [threading.Thread(target=self._pump_out, daemon=True, name="stdout",
                                 args=(self.client.read_stdout, 1))]
        if not self.terminal:
            outs.append(threading.Thread(target=self._pump_out, daemon=True, name="stderr",
                                         args=(self.client.read_stderr, 2)))
        threading.Thread(target=self._pump_in, daemon=True, name="stdin").start()
        for t in outs:
            t.start()
        result: list[int] = []
        done = threading.Event()

        def wait() -> None:
            try:
                result.append(self.client.wait_process(self.cid, self.eid))
            except AgentError as exc:
                log.warning("WaitProcess failed: %s", exc)
            done.set()

        threading.Thread(target=wait, daemon=True, name="wait").start()
        while not done.wait(1.0):
            pass
        for t in outs:
            t.join(DRAIN_S)
        status = result[0] if result and result[0] >= 0 else LOST
        return status
