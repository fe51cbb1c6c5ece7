"""OOM events from the container's memory cgroup (v2 memory.events, v1 memory.oom_control).

Whenever one of a container's processes exits, the cgroup's oom_kill counter is read; a
rise since the last look is one OOM event for that container. The counter is raised by
the kernel before its victim dies, so the exit that follows an OOM kill always sees it.
"""

from __future__ import annotations

import collections
import threading

from agent_io.guest import cgroups
from agent_io.guest.container import Container
from agent_io.guest.process import Process
from agent_io.guest.stdio import IsActive


class OomEvents:
    """A queue of container ids whose cgroup saw an OOM kill."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: collections.deque[str] = collections.deque()

    def watch(self, c: Container, proc: Process) -> None:
        def exited(_p: Process) -> None:
            kills = cgroups.oom_kills(c.cgroups)
            with self._cond:
                if kills <= c.oom_seen:
                    return
                c.oom_seen = kills
                self._events.append(c.id)
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
