"""Verification: the hash chain finds the first changed, removed, reordered or inserted
record; the index check finds entries that point at the wrong record, are missing or
are extra; damage LMDB itself reports (MDB_CORRUPTED) is a failed check, not a crash."""

from __future__ import annotations

import uuid
from typing import Any

import lmdb

from .codec import GENESIS, HASH_LEN, POS, chain_hash, header_of, name_part
from .errors import StoreCorrupted
from .ids import self_named_position
from .lmdbenv import Env
from .model import VerifyReport

_CHUNK = 4096


class _Damage(Exception):
    """A failed check at a position (internal: becomes a VerifyReport)."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


class _Walk:
    """Progress of one verification: the next position and the hash before it."""

    def __init__(self) -> None:
        self.expected = 0
        self.prev = GENESIS
        self.versions: dict[str, int] = {}
        self.id_entries = 0  # records whose event id needs an index entry

    def report(self, position: int, reason: str) -> VerifyReport:
        return VerifyReport(False, self.expected, position, reason, self.expected - 1,
                            self.prev.hex())


def verify_chain(env: Env, anchor: tuple[int, str] | None) -> VerifyReport:
    """Check every record's hash and index entries; with `anchor` (position, hash hex)
    also detect truncation."""
    walk = _Walk()
    try:
        records, by_id, index_damage = _count_index(env)
        found = _walk_chain(env, walk, records, anchor)
        if index_damage is not None:
            raise index_damage
        if by_id != walk.id_entries:
            raise _Damage(records, f"the index has {by_id} event id entries for "
                                   f"{walk.id_entries} records with a caller's id")
    except _Damage as exc:
        return walk.report(exc.position, exc.reason)
    except (lmdb.Error, StoreCorrupted) as exc:
        return walk.report(walk.expected, f"the store is damaged at or after position "
                                          f"{walk.expected}: {exc}")
    last = walk.expected - 1
    if anchor is not None and not found and anchor[0] >= 0:
        return VerifyReport(False, walk.expected, walk.expected,
                            f"store truncated: it ends at position {last}, anchor is at "
                            f"{anchor[0]}", last, walk.prev.hex())
    return VerifyReport(True, walk.expected, None, "", last, walk.prev.hex())


def _count_index(env: Env) -> tuple[int, int, _Damage | None]:
    """Records and event id entries in one snapshot, and whether its index lacks exactly
    one stream entry per record, each entry holding a position that exists (reported
    after the chain walk, which names the record when one is wrong)."""
    with env.reading() as txn:
        cur = txn.cursor(db=env.events)
        records = POS.unpack(cur.key())[0] + 1 if cur.last() else 0
        by_stream = by_id = 0
        for key, value in txn.cursor(db=env.index):
            if len(value) != POS.size or POS.unpack(value)[0] >= records:
                return records, by_id, _Damage(records, f"index entry {key.hex()} holds "
                                                 f"{value.hex()}, not a position below {records}")
            if key[:1] == b"\x00":
                by_id += 1
            else:
                by_stream += 1
    if by_stream != records:
        return records, by_id, _Damage(records, f"the index has {by_stream} stream/version "
                                                f"entries for {records} records")
    return records, by_id, None


def _walk_chain(env: Env, walk: _Walk, records: int, anchor: tuple[int, str] | None
                ) -> bool:
    """Check records 0 .. records-1 in chunks; True when the anchor's position was seen."""
    anchor_pos, anchor_hash = anchor if anchor is not None else (-1, "")
    seen_anchor = False
    while walk.expected < records:
        with env.reading() as txn:
            cur = txn.cursor(db=env.events)
            if not (cur.set_range(POS.pack(walk.expected)) if walk.expected else cur.first()):
                break
            for key, value in cur:
                if walk.expected >= records:
                    break
                _check_record(txn, env, walk, key, value)
                if walk.expected == anchor_pos:
                    if value[:HASH_LEN].hex() != anchor_hash:
                        raise _Damage(anchor_pos, f"hash at anchor position {anchor_pos} is "
                                                  f"{value[:HASH_LEN].hex()}, anchor says "
                                                  f"{anchor_hash}")
                    seen_anchor = True
                walk.prev = value[:HASH_LEN]
                walk.expected += 1
                if walk.expected % _CHUNK == 0:
                    break
    if walk.expected < records:
        raise _Damage(walk.expected, f"position {walk.expected} is missing")
    return seen_anchor


def _check_record(txn: Any, env: Env, walk: _Walk, key: bytes, value: bytes) -> None:
    """The record at `walk.expected`: its key, hash, header and both index entries."""
    pos = walk.expected
    if key != POS.pack(pos):
        raise _Damage(pos, f"position {pos} is missing (found key {key.hex()})")
    if chain_hash(walk.prev, pos, memoryview(value)[HASH_LEN:]) != value[:HASH_LEN]:
        raise _Damage(pos, f"hash of record at position {pos} does not match its bytes and "
                           "the previous hash")
    etype, stream, version, event_id = header_of(pos, value)
    try:
        name_part(etype, "event type")
        name_part(stream, "stream name")
        id_bytes = uuid.UUID(event_id).bytes
    except (ValueError, TypeError) as exc:
        raise _Damage(pos, f"record at position {pos} has a bad header: {exc}") from None
    if version != walk.versions.get(stream, 0):
        raise _Damage(pos, f"record at position {pos} is version {version} of stream "
                           f"{stream!r}, expected {walk.versions.get(stream, 0)}")
    walk.versions[stream] = version + 1
    entry = stream.encode("utf-8") + b"\x00" + POS.pack(version)
    if txn.get(entry, db=env.index) != key:
        raise _Damage(pos, f"index of stream {stream!r} version {version} does not point at "
                           f"position {pos}")
    if self_named_position(id_bytes) == pos:  # a generated id: found without an entry
        if txn.get(b"\x00" + id_bytes, db=env.index) is not None:
            raise _Damage(pos, f"event id {event_id} names position {pos} but has an entry")
        return
    walk.id_entries += 1
    if txn.get(b"\x00" + id_bytes, db=env.index) != key:
        raise _Damage(pos, f"index of event id {event_id} does not point at position {pos}")
