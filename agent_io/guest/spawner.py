"""Start processes from one long-lived thread and reap every child from another.

PR_SET_PDEATHSIG fires when the *thread* that forked a child exits, so all forks happen
on one dedicated thread that lives as long as the agent. A single reaper owns waitpid(-1):
it also collects orphans re-parented to the agent (it is a subreaper, or pid 1).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Spawner:
    """Runs fork jobs on one dedicated thread; callers block on the result."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="guest-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # handed to the caller, never lost
                    fut.set_exception(exc)

    def call(self, fn: Callable[[], Any]) -> Any:
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut.result()


class Reaper:
    """Owns waitpid(-1): dispatches exit statuses to the callback registered for a pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._unclaimed: dict[int, int] = {}
        self._children = threading.Event()
        self._thread = threading.Thread(target=self._run, name="guest-reaper", daemon=True)
        self._thread.start()

    def watch(self, pid: int, callback: Callable[[int], None]) -> None:
        """Call `callback(wait_status)` once `pid` exits (even if it already has)."""
        with self._lock:
            status = self._unclaimed.pop(pid, None)
            if status is None:
                self._callbacks[pid] = callback
        self._children.set()
        if status is not None:
            callback(status)

    def _run(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                self._children.wait(0.5)
                self._children.clear()
                continue
            with self._lock:
                callback = self._callbacks.pop(pid, None)
                if callback is None:
                    self._unclaimed[pid] = status
                    if len(self._unclaimed) > 4096:  # orphans nobody will claim
                        self._unclaimed.pop(next(iter(self._unclaimed)))
            if callback is not None:
                callback(status)
