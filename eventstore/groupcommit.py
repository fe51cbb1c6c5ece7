"""Group commit: concurrent writers share one write transaction and one flush.

A caller queues its operation. If no leader is active it becomes the leader: it waits
briefly (at most the duration of the previous commit) until as many requests are
queued as the previous batch held, then commits the whole queue as one batch and wakes
every caller in it. Callers that arrive meanwhile queue for the next batch; when the
batch is done the leader hands leadership to the first of them. Alone, a caller finds
its own request is the whole queue and commits at once: no thread handoff, no waiting.

Each request sleeps on its own lock, released once by a leader (done, or lead next), so
a commit wakes exactly the callers that need waking and none of them contends for the
shared lock on the way out: under the GIL that wake-up convoy cost more than the commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Op = Callable[[Any], Any]
_MAX_LINGER = 0.002
_allocate_lock = threading.Lock


class _Request:
    __slots__ = ("op", "result", "error", "done", "elected", "wake")

    def __init__(self, op: Op) -> None:
        self.op = op
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.elected = False
        self.wake = _allocate_lock()
        self.wake.acquire()  # released by the leader that finishes or elects this request


class GroupCommitter:
    """Runs operations in batches through `commit(apply)`, one transaction per batch."""

    def __init__(self, commit: Callable[[Callable[[Any], None]], None],
                 caught: tuple[type[BaseException], ...]) -> None:
        self._commit = commit
        self._caught = caught
        self._lock = threading.Lock()
        self._gather_cv = threading.Condition(self._lock)
        self._queue: list[_Request] = []
        self._leading = False
        self._target = 1
        self._linger = 0.0
        self.batches = 0
        self.requests = 0

    def submit(self, op: Op) -> Any:
        """Run `op(txn)` in a shared write txn; return its result or raise its error."""
        req = _Request(op)
        with self._lock:
            self._queue.append(req)
            follow = self._leading
            if follow:
                if len(self._queue) >= self._target:
                    self._gather_cv.notify()
            else:
                self._leading = True
        if follow:
            try:
                req.wake.acquire()  # done, or elected to lead the next batch
            except BaseException:  # e.g. KeyboardInterrupt while waiting: no stall for others
                self._withdraw(req)
                raise
        if not req.done:
            self._lead()
        if req.error is not None:
            raise req.error
        return req.result

    def _lead(self) -> None:
        """Gather a batch (this caller's request is in the queue), commit it, hand over."""
        with self._lock:
            if len(self._queue) < self._target and self._linger:
                self._gather_cv.wait_for(lambda: len(self._queue) >= self._target,
                                         self._linger)
            batch, self._queue = self._queue, []
        caught = self._caught

        def apply(txn: Any) -> None:
            for r in batch:
                try:
                    r.result, r.error = r.op(txn), None
                except caught as exc:
                    r.result, r.error = None, exc

        started = time.perf_counter()
        try:
            self._commit(apply)
        except BaseException as exc:  # noqa: BLE001 - every caller in the batch must learn it
            for r in batch:
                r.error = exc
        finally:
            linger = min(time.perf_counter() - started, _MAX_LINGER)
            for r in batch:
                r.done = True
                r.wake.release()
            with self._lock:
                self._target = len(batch)
                self._linger = linger
                self.batches += 1
                self.requests += len(batch)
                self._elect_next()

    def _elect_next(self) -> None:
        """With the lock held: wake the first queued caller to lead, or stand down."""
        if self._queue:
            self._queue[0].elected = True
            self._queue[0].wake.release()
        else:
            self._leading = False

    def _withdraw(self, req: _Request) -> None:
        """An interrupted caller: its queued request never runs; pass on a leadership."""
        with self._lock:
            if req in self._queue:
                self._queue.remove(req)
                if req.elected:
                    self._elect_next()
