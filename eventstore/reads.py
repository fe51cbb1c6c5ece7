"""Read-side: short read transactions in chunks, lazy decoding, filters, follow."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice, repeat
from typing import Any

from .codec import (
    HASH_LEN,
    POS,
    Upcasters,
    decode,
    record_is,
    stream_key,
    stream_startswith,
    type_prefixes,
)
from .errors import StoreCorrupted
from .lmdbenv import Env
from .model import RecordedEvent
from .writes import stream_version

CHUNK = 512  # records per short read txn; small enough to stay in cache
_SNAPSHOT_RETRIES = 50


def read_chunk(env: Env, start: int, limit: int) -> list[bytes]:
    """Up to `limit` consecutive values from `start` in one short read txn."""
    with env.reading() as txn:
        cur = txn.cursor(db=env.events)
        if not cur.set_range(POS.pack(start)):
            return []
        first = POS.unpack(cur.key())[0]
        values = list(islice(cur.iternext(keys=False, values=True), limit))
        last = cur.key() or (cur.key() if cur.last() else b"")  # iterator ran off the end
        if first != start or POS.unpack(last)[0] - first + 1 != len(values):
            gap = _first_gap(txn, env, start)
            raise StoreCorrupted(f"positions are not gapless after {start}: {gap} is missing",
                                 gap)
        return values


def _first_gap(txn: Any, env: Env, start: int) -> int:
    expected = start
    for key in txn.cursor(db=env.events).iternext(keys=True, values=False):
        if POS.unpack(key)[0] < start:
            continue
        if POS.unpack(key)[0] != expected:
            break
        expected += 1
    return expected


def last_position(env: Env) -> int:
    with env.reading() as txn:
        cur = txn.cursor(db=env.events)
        return POS.unpack(cur.key())[0] if cur.last() else -1


def _chunks(env: Env, start: int, end: int | None) -> Iterator[tuple[int, list[bytes]]]:
    """(first position, values) chunks from `start` up to `end`, at most the current tip.

    A new read txn may see an older snapshot than the previous one; a chunk that comes
    back short before `end` is retried rather than taken as the end of the log.
    """
    tip = last_position(env)
    end = tip if end is None else min(end, tip)
    pos, misses = start, 0
    while pos <= end:
        values = read_chunk(env, pos, min(CHUNK, end - pos + 1))
        if not values:
            misses += 1
            if misses > _SNAPSHOT_RETRIES:
                raise StoreCorrupted(f"position {pos} vanished while reading up to {end}", pos)
            time.sleep(0.001)
            continue
        misses = 0
        yield pos, values
        pos += len(values)


def read_all(env: Env, upcasters: Upcasters, from_position: int, to_position: int | None,
             types: Iterable[str] | str | None, stream_prefix: str | None
             ) -> Iterator[RecordedEvent]:
    """Events by position; filters compare raw bytes and skip non-matching payloads."""
    prefixes = type_prefixes(types) if types is not None else None
    sprefix = stream_prefix.encode("utf-8") if stream_prefix else None
    if prefixes is None and sprefix is None:
        for pos, values in _chunks(env, max(from_position, 0), to_position):
            yield from map(decode, range(pos, pos + len(values)), values, repeat(upcasters))
        return
    for pos, values in _chunks(env, max(from_position, 0), to_position):
        for i, value in enumerate(values):
            if prefixes is not None and not value.startswith(prefixes, HASH_LEN + 1):
                continue
            if sprefix is not None and not stream_startswith(value, sprefix):
                continue
            yield decode(pos + i, value, upcasters)


def read_stream(env: Env, upcasters: Upcasters, stream: str, from_version: int,
                to_version: int | None) -> Iterator[RecordedEvent]:
    """A stream's events by version, through the (stream, version) -> position index."""
    skey = stream_key(stream)
    version = max(from_version, 0)
    while to_version is None or version <= to_version:
        with env.reading() as txn:
            cur = txn.cursor(db=env.index)
            if not cur.set_range(skey + b"\x00" + POS.pack(version)):
                return
            batch: list[tuple[int, bytes]] = []
            for key, pkey in cur:
                if len(key) != len(skey) + 9 or not key.startswith(skey) or key[len(skey)]:
                    break
                v = POS.unpack_from(key, len(skey) + 1)[0]
                if (to_version is not None and v > to_version) or len(batch) == CHUNK:
                    break
                if v != version + len(batch):
                    raise StoreCorrupted(f"stream {stream!r} has no version "
                                         f"{version + len(batch)} in its index")
                pos = _pos(pkey)
                batch.append((pos, _check_indexed(txn.get(pkey, db=env.events), skey, v, pos)))
        if not batch:
            return
        for pos, value in batch:
            yield decode(pos, value, upcasters)
        version += len(batch)


def last_event(env: Env, upcasters: Upcasters, stream: str) -> RecordedEvent | None:
    """The stream's newest event, found and read in one transaction."""
    skey = stream_key(stream)
    with env.reading() as txn:
        cur = txn.cursor(db=env.index)
        found = cur.prev() if cur.set_range(skey + b"\x01") else cur.last()
        key = cur.key() if found else b""
        if not (len(key) == len(skey) + 9 and key.startswith(skey) and key[len(skey)] == 0):
            return None
        pkey = cur.value()
        value = txn.get(pkey, db=env.events)
    pos = _pos(pkey)
    return decode(pos, _check_indexed(value, skey, POS.unpack_from(key, len(skey) + 1)[0], pos),
                  upcasters)


def _pos(pkey: bytes) -> int:
    """The position an index value holds (-1 when it is not 8 bytes: damage)."""
    return POS.unpack(pkey)[0] if len(pkey) == POS.size else -1


def _check_indexed(value: bytes | None, skey: bytes, version: int, pos: int) -> bytes:
    """Refuse what the index entry (stream, version) -> pos points at unless it is that
    stream's event at that version: a damaged index must not show another stream's event.
    Returns the record, found."""
    stream = skey.decode("utf-8", "replace")
    if value is None:
        raise StoreCorrupted(
            f"stream {stream!r} version {version} points at missing position {pos}", pos)
    if not record_is(value, skey, version):
        raise StoreCorrupted(f"index of stream {stream!r} version {version} points at "
                             f"position {pos}, which holds another record", pos)
    return value


def current_version(env: Env, stream: str) -> int:
    skey = stream_key(stream)
    with env.reading() as txn:
        return stream_version(txn, env, skey)


def stream_names(env: Env, prefix: str) -> list[str]:
    """Every stream whose name starts with `prefix`, in byte order."""
    raw = prefix.encode("utf-8")
    names = []
    with env.reading() as txn:
        cur = txn.cursor(db=env.index)
        found = cur.set_range(raw or b"\x01")  # keys from NUL on are event ids
        while found:
            key = cur.key()
            if not key.startswith(raw):
                break
            skey = key[:-9]
            names.append(skey.decode("utf-8"))
            found = cur.set_range(skey + b"\x01")
    return names


def follow(env: Env, upcasters: Upcasters, from_position: int, poll_interval: float,
           stop: Any) -> Iterator[RecordedEvent]:
    """Tail the log, resuming by position, until `stop` is set (or forever)."""
    is_set: Callable[[], bool] = (
        (lambda: False) if stop is None else stop.is_set if hasattr(stop, "is_set") else stop)
    wait = getattr(stop, "wait", None) or time.sleep
    pos = max(from_position, 0)
    while not is_set():
        values = read_chunk(env, pos, CHUNK)
        if not values:
            wait(poll_interval)
            continue
        yield from map(decode, range(pos, pos + len(values)), values, repeat(upcasters))
        pos += len(values)
