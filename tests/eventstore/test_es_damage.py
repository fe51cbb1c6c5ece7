"""Damage that used to pass unseen or kill the reader: a truncated or empty data file, an
index that points at the wrong record, bit flips in index pages (issue #11: 5, 6, 15)."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from eventstore import EventStore, NewEvent, StoreCorrupted, StoreTruncated

KEY = struct.Struct(">Q").pack
PAGE = 4096


def _store(path: Path, n: int = 3000, streams: int = 50) -> None:
    with EventStore.open(path, durable=False) as store:
        for i in range(n):
            store.append(f"stream-{i % streams}", [NewEvent("Tick", {"i": i, "pad": "x" * 100})])


def _in_child(path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` with `store` open on path in a child: a SIGBUS must not kill pytest."""
    prog = ("import sys\nfrom eventstore import EventStore, StoreCorrupted\n"
            "try:\n    store = EventStore.open(sys.argv[1], readonly=True)\n"
            f"    {code}\n"
            "except StoreCorrupted as exc:\n    print(type(exc).__name__, exc)\n    sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", prog, str(path)], capture_output=True,
                          text=True, timeout=60)


def test_truncated_data_file_is_refused_before_it_is_mapped(tmp_path: Path) -> None:
    _store(tmp_path)
    data = tmp_path / "data.mdb"
    full = data.stat().st_size
    os.truncate(data, full // 2)
    for code in ("print(store.verify())", "print(sum(1 for _ in store.read_all()))",
                 "print(list(store.read_stream('stream-7')))"):
        out = _in_child(tmp_path, code)
        assert out.returncode == 3, (code, out.returncode, out.stderr)   # not -SIGBUS
        assert out.stdout.startswith("StoreTruncated") and "truncated" in out.stdout
    with pytest.raises(StoreTruncated, match=f"{full // 2} bytes"):
        EventStore.open(tmp_path)
    assert data.stat().st_size == full // 2      # a writer did not "repair" it either


@pytest.mark.parametrize("content", [b"", b"\x00" * 8192, os.urandom(3 * PAGE)],
                         ids=["empty", "zeros", "garbage"])
def test_data_file_without_an_environment_is_damaged_not_new(tmp_path: Path,
                                                             content: bytes) -> None:
    (tmp_path / "data.mdb").write_bytes(content)
    for readonly in (True, False):
        with pytest.raises(StoreCorrupted, match="no valid LMDB environment"):
            EventStore.open(tmp_path, readonly=readonly)
    assert (tmp_path / "data.mdb").read_bytes() == content


def _raw_index(path: Path, change: object) -> None:
    env = lmdb.open(str(path), map_size=16 * 1024**3, max_dbs=8)
    try:
        with env.begin(write=True) as txn:
            change(txn, env.open_db(b"index", txn=txn, create=False))  # type: ignore[operator]
    finally:
        env.close()


def test_index_pointing_at_another_streams_event_is_found_and_refused(tmp_path: Path) -> None:
    _store(tmp_path, n=60, streams=3)
    with EventStore.open(tmp_path) as store:
        other = next(store.read_stream("stream-1", 4, 4))

    def repoint(txn: lmdb.Transaction, db: object) -> None:
        txn.put(b"stream-0\x00" + KEY(4), KEY(other.position), db=db)

    _raw_index(tmp_path, repoint)
    with EventStore.open(tmp_path) as store:
        report = store.verify()
        assert not report.ok and "stream 'stream-0' version 4" in report.reason
        with pytest.raises(StoreCorrupted, match="holds another record"):
            list(store.read_stream("stream-0"))
        assert [e.version for e in store.read_stream("stream-0", 0, 3)] == [0, 1, 2, 3]


def test_extra_and_missing_index_entries_are_found(tmp_path: Path) -> None:
    _store(tmp_path, n=30, streams=3)
    _raw_index(tmp_path, lambda txn, db: txn.put(b"ghost\x00" + KEY(0), KEY(5), db=db))
    with EventStore.open(tmp_path) as store:
        report = store.verify()
    assert not report.ok and "31 stream/version entries for 30 records" in report.reason
    _raw_index(tmp_path, lambda txn, db: (txn.delete(b"ghost\x00" + KEY(0), db=db),
                                          txn.delete(b"stream-2\x00" + KEY(5), db=db)))
    with EventStore.open(tmp_path) as store:
        report = store.verify()
        assert not report.ok and report.first_bad_position == 17
        with pytest.raises(StoreCorrupted, match="no version 5"):
            list(store.read_stream("stream-2", 4))


def test_bit_flips_in_index_pages_fail_verify(tmp_path: Path) -> None:
    _store(tmp_path)
    data = tmp_path / "data.mdb"
    raw = bytearray(data.read_bytes())
    pages = [n for n in range(len(raw) // PAGE)
             if b"stream-1\x00" + bytes(7) in raw[n * PAGE:(n + 1) * PAGE]]
    assert pages
    rng = random.Random(1)
    for n in pages:
        for _ in range(8):
            raw[n * PAGE + rng.randrange(16, PAGE)] ^= 1 << rng.randrange(8)
    data.write_bytes(bytes(raw))
    out = _in_child(tmp_path, "r = store.verify(); print(r.ok, r.reason)")
    assert out.returncode == 0 and out.stdout.startswith("False "), (out.stdout, out.stderr)
