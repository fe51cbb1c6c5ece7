"""The local log, tailed by `EventStore.follow` in a thread and handed over in batches.

LMDB reads block, so they stay off the event loop; a bounded queue of batches keeps
the reader at most a few batches ahead of what the network acknowledges.
"""

from __future__ import annotations

import asyncio
import queue
import threading

from eventstore import EventStore, RecordedEvent

BATCH = 512
DEPTH = 8


class Feed:
    """Events from `start` on, in position order, until `close()`."""

    def __init__(self, store: EventStore, start: int, *, poll_interval: float = 0.02) -> None:
        self._store = store
        self._start = start
        self._poll = poll_interval
        self._queue: queue.Queue[list[RecordedEvent]] = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sbx-ship-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        batch: list[RecordedEvent] = []
        known_last = self._store.last_position()
        try:
            for event in self._store.follow(self._start, poll_interval=self._poll,
                                            stop=self._stop):
                batch.append(event)
                if event.position >= known_last:
                    known_last = self._store.last_position()
                if len(batch) >= BATCH or event.position >= known_last:
                    self._hand_over(batch)
                    batch = []
        except BaseException as exc:  # noqa: BLE001 - re-raised in the shipping task
            self._error = exc
            self._stop.set()

    def _hand_over(self, batch: list[RecordedEvent]) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    async def next_batch(self, wait: float = 0.2) -> list[RecordedEvent]:
        """The next batch, or [] when nothing new arrived within `wait` seconds."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._error is not None:
            raise self._error
        try:
            return await asyncio.to_thread(self._queue.get, True, wait)
        except queue.Empty:
            return []

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
