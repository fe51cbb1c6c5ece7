"""Generated event ids name their position: no id-index entry is written for them, and
they are still found (retries, cross-stream reuse) like ids a caller passes."""

from __future__ import annotations

import uuid
from pathlib import Path

import lmdb
import pytest

from eventstore import EventStore, IdempotencyConflict, NewEvent


def _id_index_keys(path: Path) -> list[bytes]:
    """Keys of the id part of the index (they start with NUL), read with raw lmdb."""
    env = lmdb.open(str(path), map_size=16 * 1024**3, max_dbs=8, readonly=True)
    try:
        with env.begin() as txn:
            db = env.open_db(b"index", txn=txn, create=False)
            cur = txn.cursor(db=db)
            keys = []
            found = cur.set_range(b"\x00")
            while found and cur.key()[:1] == b"\x00":
                keys.append(cur.key())
                found = cur.next()
            return keys
    finally:
        env.close()


def test_generated_ids_are_uuid7_naming_their_position(tmp_path: Path) -> None:
    with EventStore.open(tmp_path, durable=False) as store:
        for i in range(300):
            store.append(f"s-{i % 7}", [NewEvent("T", {"i": i}), NewEvent("U", {})])
        events = list(store.read_all())
    assert len({e.event_id for e in events}) == 600
    for e in events:
        parsed = uuid.UUID(e.event_id)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert int(e.event_id[-12:], 16) == e.position
    stamps = [uuid.UUID(e.event_id).int >> 80 for e in events]
    assert stamps == sorted(stamps)  # time-ordered, like the log
    assert _id_index_keys(tmp_path) == []


def test_only_caller_ids_get_an_index_entry(tmp_path: Path) -> None:
    given = uuid.uuid4()
    with EventStore.open(tmp_path, durable=False) as store:
        store.append("a", [NewEvent("T", {}), NewEvent("T", {}, event_id=str(given))])
        store.append("a", [NewEvent("T", {})])
    assert _id_index_keys(tmp_path) == [b"\x00" + given.bytes]


def test_a_generated_id_passed_back_is_found(tmp_path: Path) -> None:
    with EventStore.open(tmp_path, durable=False) as store:
        first = store.append("a", [NewEvent("T", {"n": 1}), NewEvent("T", {"n": 2})])
        store.append("b", [NewEvent("T", {})])
        stored = list(store.read_stream("a"))
        again = [NewEvent(e.type, e.data, event_id=e.event_id) for e in stored]
        assert store.append("a", again) == first  # a retry: nothing written
        assert store.last_position() == 2
        with pytest.raises(IdempotencyConflict, match="belongs to stream 'a', not 'b'"):
            store.append("b", again)
        with pytest.raises(IdempotencyConflict, match="only partly stored"):
            store.append("a", [again[0], NewEvent("T", {})])
        with pytest.raises(IdempotencyConflict, match="not as one append in this order"):
            store.append("a", again[::-1])
        assert store.last_position() == 2


def test_a_caller_uuid7_is_not_mistaken_for_the_event_it_names(tmp_path: Path) -> None:
    with EventStore.open(tmp_path, durable=False) as store:
        store.append("a", [NewEvent("T", {})])
        own = list(store.read_all())[0].event_id
        lookalike = own[:-12] + f"{1:012x}"  # names position 1, which holds nothing yet
        assert store.append("a", [NewEvent("T", {}, event_id=lookalike)]).first_position == 1
        flipped = "1" if own[22] == "0" else "0"
        other = own[:22] + flipped + own[23:]  # names position 0 too, other random bits
        assert store.append("b", [NewEvent("T", {}, event_id=other)]).first_position == 2
        assert store.append("b", [NewEvent("T", {}, event_id=other)]).first_position == 2
        assert store.append("a", [NewEvent("T", {}, event_id=lookalike)]).first_position == 1
        assert [e.event_id for e in store.read_all()] == [own, lookalike, other]
    assert _id_index_keys(tmp_path) == [b"\x00" + uuid.UUID(other).bytes]


def _change_index(path: Path, change: object) -> None:
    env = lmdb.open(str(path), map_size=16 * 1024**3, max_dbs=8)
    try:
        with env.begin(write=True) as txn:
            change(txn, env.open_db(b"index", txn=txn, create=False))  # type: ignore[operator]
    finally:
        env.close()


def test_verify_checks_id_entries_under_both_rules(tmp_path: Path) -> None:
    given = uuid.uuid4()
    with EventStore.open(tmp_path, durable=False) as store:
        store.append("a", [NewEvent("T", {}), NewEvent("T", {}, event_id=str(given))])
        generated = uuid.UUID(list(store.read_all())[0].event_id)
        assert store.verify().ok
    _change_index(tmp_path, lambda txn, db: txn.put(b"\x00" + generated.bytes,
                                                     (0).to_bytes(8, "big"), db=db))
    with EventStore.open(tmp_path) as store:
        report = store.verify()
    assert not report.ok and report.first_bad_position == 0 and "has an entry" in report.reason
    _change_index(tmp_path, lambda txn, db: (txn.delete(b"\x00" + generated.bytes, db=db),
                                             txn.delete(b"\x00" + given.bytes, db=db)))
    with EventStore.open(tmp_path) as store:
        report = store.verify()
    assert not report.ok and report.first_bad_position == 1
    assert f"event id {given}" in report.reason
