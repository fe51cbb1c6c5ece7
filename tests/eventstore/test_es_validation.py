"""Bad input never reaches the disk, and every error says what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import ANY, EventStore, EventStoreError, NewEvent

OK = {"k": 1}
BAD_APPENDS = [
    ("", [NewEvent("T", OK)], ANY, ValueError, "stream name must not be empty"),
    ("s" * 201, [NewEvent("T", OK)], ANY, ValueError, "201 bytes UTF-8, limit 200"),
    ("é" * 101, [NewEvent("T", OK)], ANY, ValueError, "202 bytes"),
    ("a\x00b", [NewEvent("T", OK)], ANY, ValueError, "contains NUL"),
    (7, [NewEvent("T", OK)], ANY, TypeError, "stream name must be a str"),
    ("s", [], ANY, ValueError, "non-empty list"),
    ("s", NewEvent("T", OK), ANY, ValueError, "non-empty list"),
    ("s", [NewEvent("", OK)], ANY, ValueError, "type of event 0 .* must not be empty"),
    ("s", [NewEvent("T", [1])], ANY, TypeError, "data of event 0 .* must be a dict"),
    ("s", [NewEvent("T", {1: 2})], ANY, TypeError, "non-str key 1"),
    ("s", [NewEvent("T", {"a": {1: 2}})], ANY, TypeError, "data of event 0 .*not msgpack"),
    ("s", [NewEvent("T", {"a": object()})], ANY, TypeError, "not msgpack-encodable"),
    ("s", [NewEvent("T", {"a": {1, 2}})], ANY, TypeError, "not msgpack-encodable"),
    ("s", [NewEvent("T", OK), NewEvent("T", OK, metadata=[])], ANY, TypeError,
     "metadata of event 1 for stream 's' must be a dict"),
    ("s", [NewEvent("T", {"a": b"x" * (16 * 1024 * 1024)})], ANY, ValueError, "limit 16777216"),
    ("s", [NewEvent("T", OK, event_id="nope")], ANY, ValueError, "not a uuid: 'nope'"),
    ("s", [NewEvent("T", OK, schema=0)], ANY, ValueError, "schema of event 0"),
    ("s", [NewEvent("T", OK, event_id="12345678-1234-5678-1234-567812345678")] * 2, ANY,
     ValueError, "repeats an event_id"),
    ("s", [NewEvent("T", OK)], -2, ValueError, "expected_version for stream 's'"),
    ("s", [NewEvent("T", OK)], "bogus", ValueError, "expected_version"),
    ("s", ["not an event"], ANY, TypeError, "must be a NewEvent"),
]


@pytest.mark.parametrize(("stream", "events", "expected", "exc", "message"), BAD_APPENDS)
def test_bad_append_raises_and_writes_nothing(tmp_path: Path, stream, events, expected, exc,
                                              message) -> None:
    with EventStore.open(tmp_path, durable=False) as store:
        with pytest.raises(exc, match=message):
            store.append(stream, events, expected)
        with pytest.raises(exc, match=message):
            store.append_multi([("fine", [NewEvent("T", OK)], ANY), (stream, events, expected)])
        assert store.last_position() == -1
        assert list(store.streams()) == []


def test_bad_snapshots(tmp_path: Path) -> None:
    with EventStore.open(tmp_path, durable=False) as store:
        store.append("s", [NewEvent("T", OK)])
        with pytest.raises(ValueError, match="stream 's' at version 1: stream is at version 0"):
            store.save_snapshot("s", 1, {})
        with pytest.raises(ValueError, match="version 0: stream is at version -1"):
            store.save_snapshot("other", 0, {})
        with pytest.raises(TypeError, match="snapshot state of stream 's' must be a dict"):
            store.save_snapshot("s", 0, [])
        with pytest.raises(TypeError, match="not msgpack-encodable"):
            store.save_snapshot("s", 0, {"x": object()})
        assert store.load_snapshot("s") is None


def test_readonly_store_refuses_writes(tmp_path: Path) -> None:
    EventStore.open(tmp_path).close()
    with EventStore.open(tmp_path, readonly=True) as store:
        with pytest.raises(EventStoreError, match="open read-only"):
            store.append("s", [NewEvent("T", OK)])


def test_missing_store_cannot_be_opened_read_only(tmp_path: Path) -> None:
    with pytest.raises(EventStoreError, match="no event store at"):
        EventStore.open(tmp_path / "absent", readonly=True)
