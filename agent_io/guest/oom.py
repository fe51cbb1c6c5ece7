"""OOM events: a container process killed by SIGKILL while the kernel's oom_kill count rose.

The agent never sends such a kill itself (those are flagged), so a SIGKILL exit that
coincides with /proc/vmstat's oom_kill counter increasing is the kernel OOM killer.
"""

from __future__ import annotations

import collections
import signal
import threading

from agent_io.guest import procfs
from agent_io.guest.process import Process
from agent_io.guest.stdio import IsActive


class OomEvents:
    """A queue of container ids whose processes the kernel OOM-killed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: collections.deque[str] = collections.deque()

    def watch(self, container_id: str, proc: Process) -> None:
        def exited(p: Process) -> None:
            if (
                p.status == 128 + signal.SIGKILL
                and not p.killed_by_agent
                and procfs.vmstat_counter("oom_kill") > p.oom_kills_at_start
            ):
                with self._cond:
                    self._events.append(container_id)
                    self._cond.notify_all()

        proc.on_exit(exited)

    def next(self, is_active: IsActive) -> str | None:
        """Block until an OOM event (its container id) or until the caller goes away."""
        with self._cond:
            while not self._events:
                if not is_active():
                    return None
                self._cond.wait(0.25)
            return self._events.popleft()
