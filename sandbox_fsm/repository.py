"""`Repository`: sandboxes as their streams say, folded, cached and snapshotted.

In the spirit of the `eventsourcing` library's `Repository`: `state()` folds only what
was appended since the last call (events never change once written), starting from the
most recently used folds kept in an LRU cache, else from the stream's snapshot. Nothing
here writes an event.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict

from eventstore import EventStore, RecordedEvent

from .errors import NotFound
from .names import Ev, State
from .projection import Projector
from .state import SandboxState

STREAM_PREFIX = "sandbox-"
FOLD_CACHE = 1024   # sandboxes whose last fold is kept, most recently used


def stream_of(sandbox_id: str) -> str:
    return STREAM_PREFIX + sandbox_id


class Repository:
    """Reads sandboxes from one event store; safe to share between threads."""

    def __init__(self, store: EventStore, *, snapshot_every: int = 200,
                 cache_size: int = FOLD_CACHE) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self.cache_size = cache_size
        self._folds: OrderedDict[str, SandboxState] = OrderedDict()   # sandbox -> last fold
        self._guard = threading.Lock()

    def state(self, sandbox_id: str) -> SandboxState:
        """The sandbox as its events say (deleted ones included); NotFound if never created.
        The caller gets its own copy."""
        stream = stream_of(sandbox_id)
        with self._guard:
            cached = self._folds.get(sandbox_id)
        if cached is not None:
            projector, start = Projector(sandbox_id, copy.deepcopy(cached)), cached.version + 1
        elif (snap := self.store.load_snapshot(stream)) is not None:
            projector = Projector(sandbox_id, SandboxState.from_dict(snap.state))
            start = snap.version + 1
        else:
            projector, start = Projector(sandbox_id), 0
        state = projector.apply_all(self.store.read_stream(stream, from_version=start))
        if state.version < 0:
            raise NotFound(f"no sandbox {sandbox_id!r} in the log")
        if cached is None or state.version > cached.version:
            with self._guard:
                self._folds[sandbox_id] = copy.deepcopy(state)
                self._folds.move_to_end(sandbox_id)
                if len(self._folds) > self.cache_size:
                    self._folds.popitem(last=False)
        return state

    def events(self, sandbox_id: str) -> list[RecordedEvent]:
        events = list(self.store.read_stream(stream_of(sandbox_id)))
        if not events:
            raise NotFound(f"no sandbox {sandbox_id!r} in the log")
        return events

    def list_sandboxes(self) -> list[SandboxState]:
        """Every sandbox in the log (deleted ones included), folded."""
        return [self.state(s[len(STREAM_PREFIX):]) for s in self.store.streams(STREAM_PREFIX)]

    def live_sandboxes(self) -> tuple[int, list[str]]:
        """(sandboxes in the log, ids of those not finished deleting, or deleted but
        maybe still holding something), by reading only each stream's last event: no
        fold for a sandbox that is gone."""
        streams = list(self.store.streams(STREAM_PREFIX))
        live = []
        for stream in streams:
            last = self.store.last_event(stream)
            if last is None:
                continue
            if not (last.type == Ev.OPERATION_COMPLETED
                    and last.data.get("state") == State.DELETED) or self._still_holds(last):
                live.append(stream[len(STREAM_PREFIX):])
        return len(streams), live

    def _still_holds(self, completed: RecordedEvent) -> bool:
        """A deleted sandbox that may still hold something: one whose delete started from
        `failed`, which once skipped teardown (that delete's OperationStarted is 7 or 9
        events back); only such a sandbox is folded to look at its ledger."""
        first = max(0, completed.version - 9)
        for event in self.store.read_stream(completed.stream, first, completed.version - 7):
            if event.type == Ev.OPERATION_STARTED and event.data.get("op") == completed.data["op"]:
                return event.data.get("from") == State.FAILED and \
                    bool(self.state(completed.stream[len(STREAM_PREFIX):]).ledger)
        return False

    def maybe_snapshot(self, sandbox_id: str, version: int) -> None:
        """Snapshot the sandbox once `snapshot_every` events followed the last snapshot."""
        snap = self.store.load_snapshot(stream_of(sandbox_id))
        if version - (snap.version if snap else -1) >= self.snapshot_every:
            state = self.state(sandbox_id)
            self.store.save_snapshot(stream_of(sandbox_id), state.version, state.to_dict())
