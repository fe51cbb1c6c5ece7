"""Behaviour of the public API on a real store: versions, idempotency, multi-append,
snapshots, upcasters, filters, follow, map growth."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventStore,
    IdempotencyConflict,
    NewEvent,
    Snapshot,
    WrongExpectedVersion,
)


def ev(kind: str = "T", event_id: str | None = None, **data: object) -> NewEvent:
    return NewEvent(kind, dict(data), event_id=event_id)


@pytest.fixture
def store(tmp_path: Path):
    with EventStore.open(tmp_path / "s", durable=False) as s:
        yield s


def test_positions_versions_and_expected_versions(store: EventStore) -> None:
    assert (store.last_position(), store.stream_version("a")) == (-1, -1)
    with pytest.raises(WrongExpectedVersion, match="'a': expected version stream_exists"):
        store.append("a", [ev()], STREAM_EXISTS)
    r = store.append("a", [ev(), ev()], NO_STREAM)
    assert (r.first_position, r.last_position, r.version) == (0, 1, 1)
    with pytest.raises(WrongExpectedVersion) as err:
        store.append("a", [ev()], NO_STREAM)
    assert (err.value.stream, err.value.expected, err.value.actual) == ("a", NO_STREAM, 1)
    with pytest.raises(WrongExpectedVersion, match="expected version 0, actual version 1"):
        store.append("a", [ev()], 0)
    assert store.append("b", [ev()], ANY).version == 0
    assert store.append("a", [ev()], 1).first_position == 3
    assert store.append("a", [ev()], STREAM_EXISTS).version == 3
    assert store.last_position() == 4 and store.stream_version("a") == 3
    assert [e.version for e in store.read_stream("a", 1, 2)] == [1, 2]
    assert [e.position for e in store.read_stream("a", 2)] == [3, 4]
    assert [e.position for e in store.read_all(1, 3)] == [1, 2, 3]
    assert [e.position for e in store.read_all(3, 99)] == [3, 4]
    assert list(store.read_all(7)) == []
    assert list(store.read_stream("missing")) == []


def test_idempotent_retry_returns_original_result(store: EventStore) -> None:
    events = [ev(event_id=str(uuid.uuid4()), n=i) for i in range(2)]
    first = store.append("a", events, NO_STREAM)
    store.append("a", [ev()])
    assert store.append("a", events, NO_STREAM) == first  # expected version is not rechecked
    assert store.last_position() == 2
    with pytest.raises(IdempotencyConflict, match="only partly stored"):
        store.append("a", [events[0], ev(event_id=str(uuid.uuid4()))])
    with pytest.raises(IdempotencyConflict, match="not as one append in this order"):
        store.append("a", events[::-1])
    with pytest.raises(IdempotencyConflict, match="belongs to stream 'a', not 'b'"):
        store.append("b", events)
    assert store.last_position() == 2


def test_append_multi_is_all_or_nothing(store: EventStore) -> None:
    store.append("a", [ev()])
    res = store.append_multi([("a", [ev()], 0), ("b", [ev(), ev()], NO_STREAM)])
    assert [(r.first_position, r.version) for r in res] == [(1, 1), (2, 1)]
    with pytest.raises(WrongExpectedVersion, match="'c'"):
        store.append_multi([("a", [ev()], 1), ("c", [ev()], 3)])
    assert store.last_position() == 3 and store.stream_version("a") == 1
    same = store.append_multi([("d", [ev()], NO_STREAM), ("d", [ev()], 0)])  # sees itself
    assert [r.version for r in same] == [0, 1]


def test_snapshots_and_upcasters(store: EventStore) -> None:
    assert store.load_snapshot("a") is None
    store.append("a", [NewEvent("Renamed", {"name": "x"}), NewEvent("Renamed", {"n": "y"},
                                                                     schema=2)])
    store.save_snapshot("a", 0, {"name": "x"})
    snap = store.load_snapshot("a")
    assert snap == Snapshot("a", 0, {"name": "x"}, next(store.read_all()).hash)
    store.register_upcaster("Renamed", 1, lambda d: {"n": d["name"]})
    store.register_upcaster("Renamed", 2, lambda d: {**d, "upper": d["n"].upper()})
    got = [(e.schema, e.data) for e in store.read_stream("a")]
    assert got == [(3, {"n": "x", "upper": "X"}), (3, {"n": "y", "upper": "Y"})]


def test_filters_and_stream_listing(store: EventStore) -> None:
    for i in range(30):
        store.append(f"sandbox-{i % 3}" if i % 2 else f"other-{i % 2}",
                     [NewEvent("Rare" if i % 10 == 0 else "Common", {"i": i})])
    assert [e.data["i"] for e in store.read_all(types=["Rare"])] == [0, 10, 20]
    assert [e.data["i"] for e in store.read_all(types="Rare", from_position=5)] == [10, 20]
    pre = [e.stream for e in store.read_all(stream_prefix="sandbox-")]
    assert len(pre) == 15 and all(s.startswith("sandbox-") for s in pre)
    assert list(store.read_all(stream_prefix="sandbox-0-longer")) == []
    assert list(store.streams()) == ["other-0", "sandbox-0", "sandbox-1", "sandbox-2"]
    assert list(store.streams("sandbox-1")) == ["sandbox-1"]


def test_follow_sees_appends_from_another_thread_and_stops(store: EventStore) -> None:
    stop = threading.Event()
    seen: list[int] = []

    def tail() -> None:
        for e in store.follow(0, poll_interval=0.001, stop=stop):
            seen.append(e.data["i"])
            if len(seen) == 50:
                stop.set()

    t = threading.Thread(target=tail)
    t.start()
    for i in range(50):
        store.append("f", [ev(i=i)])
    t.join(timeout=30)
    assert not t.is_alive() and seen == list(range(50))


def test_map_grows_when_full(tmp_path: Path) -> None:
    with EventStore.open(tmp_path, map_size=128 * 1024) as store:
        for i in range(40):
            store.append("big", [NewEvent("Big", {"pad": "x" * 20000, "i": i})])
        assert [e.data["i"] for e in store.read_stream("big")] == list(range(40))
        assert store.verify().ok
        assert store.reader_check() == 0


def test_checkpoint_of_empty_and_full_store(store: EventStore) -> None:
    assert store.checkpoint() == (-1, "00" * 32)
    assert store.verify().ok and store.verify(store.checkpoint()).ok
    store.append("a", [ev()])
    pos, digest = store.checkpoint()
    assert (pos, digest) == (0, next(store.read_all()).hash)


def test_filters_with_long_and_unicode_names(store: EventStore) -> None:
    long_stream, long_type = "sandbox-" + "é" * 96, "Type" + "x" * 60  # str8-packed names
    store.append("short", [NewEvent("T", {"i": 0})])
    store.append(long_stream, [NewEvent(long_type, {"i": 1})])
    store.append("sandbox-ü", [NewEvent("T", {"i": 2})])
    assert [e.data["i"] for e in store.read_all(types=[long_type])] == [1]
    assert [e.data["i"] for e in store.read_all(types=["T"])] == [0, 2]
    assert [e.data["i"] for e in store.read_all(stream_prefix="sandbox-")] == [1, 2]
    assert [e.data["i"] for e in store.read_all(stream_prefix="sandbox-éé")] == [1]
    assert [e.stream for e in store.read_stream(long_stream)] == [long_stream]
    assert list(store.streams("sandbox-")) == sorted([long_stream, "sandbox-ü"],
                                                     key=lambda s: s.encode())


def test_last_event_is_the_streams_newest(store):
    assert store.last_event("a") is None
    store.append("a", [ev("t0"), ev("t1")])
    store.append("ab", [ev("x")])           # a longer name sharing the prefix
    store.append("a", [ev("t2", n=7)])
    last = store.last_event("a")
    assert (last.version, last.type, last.data, last.position) == (2, "t2", {"n": 7}, 3)
    assert store.last_event("ab").type == "x" and store.last_event("b") is None
