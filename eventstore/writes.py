"""Write-side operations run inside a (shared) LMDB write transaction."""

from __future__ import annotations

from collections.abc import Sequence

import lmdb
import msgpack

from .codec import (
    GENESIS,
    HASH_LEN,
    POS,
    Encoded,
    chain_hash,
    header_of,
    record_body,
)
from .errors import IdempotencyConflict, StoreCorrupted, WrongExpectedVersion
from .ids import self_named_position
from .lmdbenv import Env
from .model import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, ExpectedVersion

Entry = tuple[str, bytes, bytes, ExpectedVersion, Sequence[Encoded]]
"""(stream, stream key (UTF-8), stream as msgpack str, expected version, encoded events)"""


class Tx:
    """A write transaction plus the chain tip, loaded once per batch."""

    def __init__(self, txn: lmdb.Transaction[bytes], env: Env) -> None:
        self.txn = txn
        self.env = env
        cur = txn.cursor(db=env.events)
        if cur.last():
            self.last_pos = POS.unpack(cur.key())[0]
            self.last_hash = cur.value()[:HASH_LEN]
        else:
            self.last_pos, self.last_hash = -1, GENESIS


def stream_version(txn: lmdb.Transaction[bytes], env: Env, skey: bytes) -> int:
    """Version of the stream's last event, -1 when it has none."""
    cur = txn.cursor(db=env.index)
    found = cur.prev() if cur.set_range(skey + b"\x01") else cur.last()
    if not found:
        return -1
    key = cur.key()
    if len(key) == len(skey) + 9 and key.startswith(skey) and key[len(skey)] == 0:
        return POS.unpack_from(key, len(skey) + 1)[0]
    return -1


def _stored_at(tx: Tx, id_bytes: bytes, event_id: str) -> int | None:
    """Position of a caller's event id that is stored already, else None."""
    txn, env = tx.txn, tx.env
    found = txn.get(b"\x00" + id_bytes, db=env.index)
    if found is not None:
        return POS.unpack(found)[0]
    pos = self_named_position(id_bytes)  # a generated id (or one naming its own position)
    if pos is None:
        return None
    value = txn.get(POS.pack(pos), db=env.events)
    return pos if value is not None and header_of(pos, value)[3] == event_id else None


def _idempotent(tx: Tx, stream: str, events: Sequence[Encoded]) -> AppendResult | None:
    """The original result when these exact events were stored before, else None.

    Only ids the caller passed are looked up: one the store generates is new."""
    given = [(e.id_bytes, e.event_id) for e in events if e.event_id is not None]
    if not given:
        return None
    found = [_stored_at(tx, raw, text) for raw, text in given]  # type: ignore[arg-type]
    if all(f is None for f in found):
        return None
    ids = [text for _, text in given]
    if len(given) != len(events) or any(f is None for f in found):
        raise IdempotencyConflict(
            f"stream {stream!r}: event ids {ids} are only partly stored; a retry must repeat "
            "the original append exactly")
    positions = [f for f in found if f is not None]
    first = positions[0]
    if positions != list(range(first, first + len(positions))):
        raise IdempotencyConflict(
            f"stream {stream!r}: event ids {ids} are stored at positions {positions}, "
            "not as one append in this order")
    version = -1
    txn, env = tx.txn, tx.env
    for pos in positions:
        value = txn.get(POS.pack(pos), db=env.events)
        if value is None:
            raise StoreCorrupted(f"id index points at missing position {pos}", pos)
        _, owner, version, _ = header_of(pos, value)
        if owner != stream:
            raise IdempotencyConflict(
                f"event id at position {pos} belongs to stream {owner!r}, not {stream!r}")
    return AppendResult(first, positions[-1], version)


def _check_expected(stream: str, expected: ExpectedVersion, actual: int) -> None:
    if expected == ANY:
        return
    if expected == NO_STREAM:
        ok = actual == -1
    elif expected == STREAM_EXISTS:
        ok = actual >= 0
    else:
        ok = actual == expected
    if not ok:
        raise WrongExpectedVersion(stream, expected, actual)


def _append_entry(tx: Tx, entry: Entry) -> AppendResult:
    stream, skey, spart, expected, events = entry
    done = _idempotent(tx, stream, events)
    if done is not None:
        return done
    txn, env = tx.txn, tx.env
    version = stream_version(txn, env, skey)
    _check_expected(stream, expected, version)
    pos, prev = tx.last_pos, tx.last_hash
    first = pos + 1
    prefix, pack, put = skey + b"\x00", POS.pack, txn.put
    events_db, index_db = env.events, env.index
    for enc in events:
        pos += 1
        version += 1
        body = record_body(enc, spart, version, pos)
        prev = chain_hash(prev, pos, body)
        pkey = pack(pos)
        put(pkey, prev + body, db=events_db, append=True)
        put(prefix + pack(version), pkey, db=index_db)
        if enc.id_bytes is not None and self_named_position(enc.id_bytes) != pos:
            put(b"\x00" + enc.id_bytes, pkey, db=index_db)
    tx.last_pos, tx.last_hash = pos, prev
    return AppendResult(first, pos, version)


def append_entries(tx: Tx, entries: Sequence[Entry]) -> list[AppendResult]:
    """All entries or none: several entries run in a child txn that aborts on error."""
    if len(entries) == 1:
        return [_append_entry(tx, entries[0])]
    parent, tip = tx.txn, (tx.last_pos, tx.last_hash)
    child = tx.env.env.begin(write=True, parent=parent)
    tx.txn = child
    try:
        results = [_append_entry(tx, e) for e in entries]
        child.commit()
        return results
    except BaseException:
        child.abort()
        tx.last_pos, tx.last_hash = tip
        raise
    finally:
        tx.txn = parent


def save_snapshot(tx: Tx, stream: str, skey: bytes, version: int, state: dict) -> None:
    """Store a snapshot together with the hash of the event at `version`."""
    txn, env = tx.txn, tx.env
    current = stream_version(txn, env, skey)
    if not 0 <= version <= current:
        raise ValueError(
            f"snapshot of stream {stream!r} at version {version}: stream is at version {current}")
    pkey = txn.get(skey + b"\x00" + POS.pack(version), db=env.index)
    value = txn.get(pkey, db=env.events) if pkey is not None else None
    if value is None:
        raise StoreCorrupted(f"stream {stream!r} version {version} has no stored record")
    txn.put(skey, msgpack.packb([version, value[:HASH_LEN], state]), db=env.snapshots)
