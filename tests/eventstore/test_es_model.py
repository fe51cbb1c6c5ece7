"""Model-based test: the store against an in-memory model, across reopenings."""

from __future__ import annotations

import shutil
import tempfile
import uuid

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventStore,
    IdempotencyConflict,
    NewEvent,
    WrongExpectedVersion,
)

STREAMS = st.sampled_from(["a", "b", "sandbox-1", "sandbox-2"])
MODES = st.sampled_from(["any", "no_stream", "exists", "exact", "wrong"])
VALUES = st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5) | st.booleans() | st.none()
DATA = st.dictionaries(st.text(max_size=4), VALUES, max_size=3)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="es-model-")
        self.store = EventStore.open(self.dir, durable=False)
        self.log: list[tuple[str, int, str, dict, str]] = []  # stream, version, type, data, id
        self.versions: dict[str, int] = {}
        self.snapshots: dict[str, tuple[int, dict]] = {}
        self.last: tuple[str, list[NewEvent], AppendResult] | None = None
        self.ids = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _events(self, datas: list[dict]) -> list[NewEvent]:
        out = []
        for d in datas:
            self.ids += 1
            out.append(NewEvent(f"T{len(d)}", d, {"m": self.ids}, str(uuid.UUID(int=self.ids))))
        return out

    def _expected(self, stream: str, mode: str) -> tuple[object, bool]:
        v = self.versions.get(stream, -1)
        return {"any": (ANY, True), "no_stream": (NO_STREAM, v == -1),
                "exists": (STREAM_EXISTS, v >= 0), "exact": (v if v >= 0 else NO_STREAM, True),
                "wrong": (v + 2, False)}[mode]

    def _record(self, stream: str, events: list[NewEvent]) -> AppendResult:
        first = len(self.log)
        for e in events:
            version = self.versions.get(stream, -1) + 1
            self.versions[stream] = version
            self.log.append((stream, version, e.type, e.data, e.event_id))
        return AppendResult(first, len(self.log) - 1, self.versions[stream])

    @rule(stream=STREAMS, datas=st.lists(DATA, min_size=1, max_size=3), mode=MODES)
    def append(self, stream: str, datas: list[dict], mode: str) -> None:
        events = self._events(datas)
        expected, ok = self._expected(stream, mode)
        if not ok:
            with pytest.raises(WrongExpectedVersion):
                self.store.append(stream, events, expected)
            return
        got = self.store.append(stream, events, expected)
        assert got == self._record(stream, events)
        self.last = (stream, events, got)

    @rule(pairs=st.lists(st.tuples(STREAMS, DATA, MODES), min_size=1, max_size=3,
                         unique_by=lambda p: p[0]))
    def append_multi(self, pairs: list[tuple[str, dict, str]]) -> None:
        entries = []
        all_ok = True
        for stream, data, mode in pairs:
            expected, ok = self._expected(stream, mode)
            all_ok &= ok
            entries.append((stream, self._events([data]), expected))
        if not all_ok:
            with pytest.raises(WrongExpectedVersion):
                self.store.append_multi(entries)
            return
        got = self.store.append_multi(entries)
        assert got == [self._record(s, evs) for s, evs, _ in entries]

    @precondition(lambda self: self.last is not None)
    @rule()
    def retry_last(self) -> None:
        stream, events, result = self.last
        assert self.store.append(stream, events, NO_STREAM) == result

    @precondition(lambda self: self.last is not None)
    @rule(other=STREAMS)
    def conflicting_retry(self, other: str) -> None:
        stream, events, _ = self.last
        if other == stream:
            events = [events[0], *self._events([{}])]
        with pytest.raises(IdempotencyConflict):
            self.store.append(other, events)

    @rule(stream=STREAMS, back=st.integers(0, 5), state=DATA)
    def snapshot(self, stream: str, back: int, state: dict) -> None:
        current = self.versions.get(stream, -1)
        if current < 0:
            with pytest.raises(ValueError):
                self.store.save_snapshot(stream, 0, state)
            return
        version = max(current - back, 0)
        self.store.save_snapshot(stream, version, state)
        self.snapshots[stream] = (version, state)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = EventStore.open(self.dir, durable=False)

    @invariant()
    def matches_model(self) -> None:
        got = [(e.stream, e.version, e.type, e.data, e.event_id) for e in self.store.read_all()]
        assert got == self.log
        assert self.store.last_position() == len(self.log) - 1
        assert sorted(self.store.streams()) == sorted(self.versions)
        for stream, version in self.versions.items():
            assert self.store.stream_version(stream) == version
            assert [e.version for e in self.store.read_stream(stream)] == list(range(version + 1))
        for stream, (version, state) in self.snapshots.items():
            snap = self.store.load_snapshot(stream)
            assert (snap.version, snap.state) == (version, state)
        assert self.store.verify().ok


StoreMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_store_matches_model = StoreMachine.TestCase
