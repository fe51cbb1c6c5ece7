"""Tamper evidence: records changed with raw lmdb are found by verify(); damage that
cannot be decoded raises StoreCorrupted with its position."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest

from eventstore import EventStore, NewEvent, StoreCorrupted

KEY = struct.Struct(">Q").pack


def _store(path: Path, n: int = 20) -> tuple[int, str]:
    with EventStore.open(path, durable=False) as store:
        for i in range(n):
            store.append(f"s-{i % 3}", [NewEvent("Tick", {"i": i})])
        return store.checkpoint()


def _raw(path: Path, db: bytes, change: Callable[[lmdb.Transaction, object], None]) -> None:
    env = lmdb.open(str(path), map_size=16 * 1024**3, max_dbs=8)
    try:
        handle = env.open_db(db, create=False)
        with env.begin(write=True) as txn:
            change(txn, handle)
    finally:
        env.close()


def _flip_byte(pos: int, offset: int) -> Callable[[lmdb.Transaction, object], None]:
    def change(txn: lmdb.Transaction, db: object) -> None:
        value = bytearray(txn.get(KEY(pos), db=db))
        value[offset] ^= 0x01
        txn.put(KEY(pos), bytes(value), db=db)
    return change


@pytest.mark.parametrize("offset", [-1, 40, 5])  # data byte, header byte, stored hash byte
def test_changed_byte_is_reported_at_its_position(tmp_path: Path, offset: int) -> None:
    _store(tmp_path)
    _raw(tmp_path, b"events", _flip_byte(7, offset))
    with EventStore.open(tmp_path) as store:
        report = store.verify()
    assert not report.ok and report.first_bad_position == 7 and report.checked == 7
    assert "position 7" in report.reason


def test_removed_record_is_reported(tmp_path: Path) -> None:
    _store(tmp_path)
    _raw(tmp_path, b"events", lambda txn, db: txn.delete(KEY(11), db=db))
    with EventStore.open(tmp_path) as store:
        report = store.verify()
        assert (report.ok, report.first_bad_position) == (False, 11)
        assert "missing" in report.reason
        with pytest.raises(StoreCorrupted, match="11"):
            list(store.read_all())


def test_reordered_records_are_reported(tmp_path: Path) -> None:
    _store(tmp_path)

    def swap(txn: lmdb.Transaction, db: object) -> None:
        a, b = txn.get(KEY(4), db=db), txn.get(KEY(9), db=db)
        txn.put(KEY(4), b, db=db)
        txn.put(KEY(9), a, db=db)

    _raw(tmp_path, b"events", swap)
    with EventStore.open(tmp_path) as store:
        assert store.verify().first_bad_position == 4


def test_inserted_record_is_reported(tmp_path: Path) -> None:
    _store(tmp_path)

    def insert(txn: lmdb.Transaction, db: object) -> None:  # shift 10.. up by one
        values = [txn.get(KEY(p), db=db) for p in range(10, 20)]
        for p, v in enumerate(values, start=11):
            txn.put(KEY(p), v, db=db)
        txn.put(KEY(10), txn.get(KEY(3), db=db), db=db)

    _raw(tmp_path, b"events", insert)
    with EventStore.open(tmp_path) as store:
        assert store.verify().first_bad_position == 10


def test_truncation_is_reported_against_an_earlier_anchor(tmp_path: Path) -> None:
    anchor = _store(tmp_path)
    assert anchor[0] == 19

    with EventStore.open(tmp_path) as store:
        cut = [(e.stream, e.version, e.event_id) for e in store.read_all(17)]

    def truncate(txn: lmdb.Transaction, db: object) -> None:
        for p in (17, 18, 19):
            txn.delete(KEY(p), db=db)

    def unindex(txn: lmdb.Transaction, db: object) -> None:  # a careful forger's truncation
        for stream, version, event_id in cut:
            txn.delete(stream.encode() + b"\x00" + KEY(version), db=db)
            txn.delete(b"\x00" + uuid.UUID(event_id).bytes, db=db)

    _raw(tmp_path, b"events", truncate)
    with EventStore.open(tmp_path) as store:
        assert not store.verify().ok  # records cut, their index entries left: seen at once
    _raw(tmp_path, b"index", unindex)
    with EventStore.open(tmp_path) as store:
        assert store.verify().ok  # the chain and index that are left are intact ...
        report = store.verify(anchor)  # ... only the anchor shows what is missing
    assert (report.ok, report.first_bad_position, report.checked) == (False, 17, 17)
    assert "truncated" in report.reason


def test_rewritten_history_differs_at_the_anchor(tmp_path: Path) -> None:
    _store(tmp_path)
    with EventStore.open(tmp_path) as store:
        good = store.verify((5, store.checkpoint()[1]))
        assert not good.ok and good.first_bad_position == 5  # wrong hash for position 5
        report = store.verify((19, store.checkpoint()[1]))
        assert report.ok and report.checked == 20


def test_undecodable_record_raises_store_corrupted_with_position(tmp_path: Path) -> None:
    _store(tmp_path)

    def garble(txn: lmdb.Transaction, db: object) -> None:
        value = txn.get(KEY(12), db=db)
        txn.put(KEY(12), value[:-8] + b"\xc1\xc1\xc1", db=db)  # 0xc1: never valid msgpack

    _raw(tmp_path, b"events", garble)
    with EventStore.open(tmp_path) as store:
        with pytest.raises(StoreCorrupted, match="position 12") as err:
            list(store.read_all())
        assert err.value.position == 12
        assert [e.position for e in store.read_all(0, 11)] == list(range(12))
        with pytest.raises(StoreCorrupted, match="position 12"):
            list(store.read_stream("s-0"))
        assert store.verify().first_bad_position == 12


def test_undecodable_snapshot_raises_store_corrupted(tmp_path: Path) -> None:
    _store(tmp_path)
    with EventStore.open(tmp_path) as store:
        store.save_snapshot("s-1", 2, {"n": 3})
    _raw(tmp_path, b"snapshots", lambda txn, db: txn.put(b"s-1", b"\xc1", db=db))
    with EventStore.open(tmp_path) as store, pytest.raises(StoreCorrupted, match="s-1"):
        store.load_snapshot("s-1")
