"""Group commit: concurrent writers share one write transaction and one flush.

A caller queues its operation. If no batch is being committed it becomes the leader:
it waits briefly (at most the duration of the previous commit) until as many requests
are queued as the previous batch held, then commits the whole queue as one batch and
wakes every caller in it. Callers that arrive meanwhile queue for the next batch.
Alone, a caller finds its own request is the whole queue and commits at once: no
thread handoff, no waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Op = Callable[[Any], Any]
_MAX_LINGER = 0.002


class _Request:
    __slots__ = ("op", "result", "error", "done")

    def __init__(self, op: Op) -> None:
        self.op = op
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommitter:
    """Runs operations in batches through `commit(apply)`, one transaction per batch."""

    def __init__(self, commit: Callable[[Callable[[Any], None]], None],
                 caught: tuple[type[BaseException], ...]) -> None:
        self._commit = commit
        self._caught = caught
        lock = threading.Lock()
        self._done_cv = threading.Condition(lock)
        self._gather_cv = threading.Condition(lock)
        self._queue: list[_Request] = []
        self._busy = False
        self._target = 1
        self._linger = 0.0
        self.batches = 0
        self.requests = 0

    def submit(self, op: Op) -> Any:
        """Run `op(txn)` in a shared write txn; return its result or raise its error."""
        req = _Request(op)
        batch: list[_Request] | None = None
        with self._done_cv:
            queue = self._queue
            queue.append(req)
            if not self._busy and len(queue) == 1 and self._target == 1:  # alone: no handoff
                self._busy = True
                self._queue = []
                batch = queue
            elif len(queue) >= self._target:
                self._gather_cv.notify()
            while self._busy and not req.done and batch is None:
                self._done_cv.wait()
            if batch is None and not req.done:
                self._busy = True
                if len(self._queue) < self._target and self._linger:
                    self._gather_cv.wait_for(lambda: len(self._queue) >= self._target,
                                             self._linger)
                batch, self._queue = self._queue, []
        if not req.done:
            self._lead(batch)
        if req.error is not None:
            raise req.error
        return req.result

    def _lead(self, batch: list[_Request]) -> None:
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
            with self._done_cv:
                for r in batch:
                    r.done = True
                self._busy = False
                self._target = len(batch)
                self._linger = min(time.perf_counter() - started, _MAX_LINGER)
                self.batches += 1
                self.requests += len(batch)
                self._done_cv.notify_all()
