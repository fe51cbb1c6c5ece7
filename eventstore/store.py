"""EventStore: the public facade over one LMDB environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import msgpack

from . import reads, writes
from .codec import (
    GENESIS,
    HASH_LEN,
    POS,
    Encoded,
    check_dict,
    encode_event,
    name_bytes,
    name_part,
    pack_value,
    stream_key,
)
from .errors import EventStoreError, StoreCorrupted
from .groupcommit import GroupCommitter
from .lmdbenv import Env
from .model import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Snapshot,
    VerifyReport,
)
from .verify import verify_chain


def _check_expected_arg(stream: str, expected: object) -> ExpectedVersion:
    if expected in (ANY, NO_STREAM, STREAM_EXISTS):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return expected
    raise ValueError(f"expected_version for stream {stream!r} must be ANY, NO_STREAM, "
                     f"STREAM_EXISTS or a version >= 0, got {expected!r}")


def _repeats_id(encoded: Sequence[Encoded]) -> bool:
    """True when two events carry the same caller-given id (generated ids never repeat)."""
    ids = [e.id_bytes for e in encoded if e.id_bytes is not None]
    return len(set(ids)) != len(ids)


class EventStore:
    """Durable, tamper-evident event log in one LMDB environment.

    `durable=True` (default): an append returns only once its commit is flushed to disk.
    `durable=False`: commits are not flushed; every acknowledged append survives a crash
    of this process, but an OS crash or power loss may lose recent appends (and LMDB
    does not promise integrity after an OS crash without flushes).
    """

    def __init__(self, env: Env) -> None:
        self._env = env
        self._upcasters: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self._writer = GroupCommitter(self._commit, (EventStoreError, ValueError, TypeError))

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False, durable: bool = True,
             map_size: int | None = None) -> EventStore:
        """Open (creating unless `readonly`) the store at directory `path`."""
        return cls(Env(path, readonly=readonly, durable=durable, map_size=map_size))

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        return self._env.path

    def close(self) -> None:
        self._env.close()

    def reader_check(self) -> int:
        """Free reader slots of dead processes; returns how many were freed."""
        return self._env.env.reader_check()

    # -- writes ---------------------------------------------------------------------------

    def _commit(self, apply: Callable[[writes.Tx], None]) -> None:
        self._env.write(lambda txn: apply(writes.Tx(txn, self._env)))

    def _submit(self, op: Callable[[writes.Tx], Any]) -> Any:
        if self._env.readonly:
            raise EventStoreError(f"event store at {self.path!r} is open read-only")
        return self._writer.submit(op)

    def _entry(self, stream: str, events: Sequence[NewEvent], expected: object) -> writes.Entry:
        spart = name_part(stream, "stream name")
        if isinstance(events, NewEvent):
            raise ValueError(f"append to stream {stream!r} needs a non-empty list of NewEvent, "
                             "got a single NewEvent")
        if events.__class__ not in (list, tuple) or not events:
            raise ValueError(f"append to stream {stream!r} needs a non-empty list of NewEvent")
        encoded = [encode_event(e, i, stream) for i, e in enumerate(events)]
        if len(encoded) > 1 and _repeats_id(encoded):
            raise ValueError(f"append to stream {stream!r} repeats an event_id")
        return (stream, name_bytes(spart), spart, _check_expected_arg(stream, expected), encoded)

    def append(self, stream: str, events: Sequence[NewEvent],
               expected_version: ExpectedVersion = ANY) -> AppendResult:
        """Append events to one stream atomically; idempotent on retried event ids."""
        entry = self._entry(stream, events, expected_version)
        return self._submit(lambda tx: writes.append_entries(tx, (entry,)))[0]

    def append_multi(self, appends: Iterable[tuple[str, Sequence[NewEvent], ExpectedVersion]]
                     ) -> list[AppendResult]:
        """Append to several streams in one transaction: all or nothing."""
        entries = [self._entry(s, evs, exp) for s, evs, exp in appends]
        if not entries:
            raise ValueError("append_multi needs at least one (stream, events, expected)")
        if _repeats_id([e for entry in entries for e in entry[4]]):
            raise ValueError("append_multi repeats an event_id across its streams")
        return self._submit(lambda tx: writes.append_entries(tx, entries))

    def save_snapshot(self, stream: str, version: int, state: dict[str, Any]) -> None:
        """Keep `state` as the fold of `stream` up to `version` (an existing version)."""
        skey = stream_key(stream)
        pack_value(check_dict(state, f"snapshot state of stream {stream!r}"),
                   f"snapshot state of stream {stream!r}")
        if not isinstance(version, int) or isinstance(version, bool):
            raise TypeError(f"snapshot version of stream {stream!r} must be int, got {version!r}")
        self._submit(lambda tx: writes.save_snapshot(tx, stream, skey, version, state))

    def register_upcaster(self, type: str, from_schema: int,
                          fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """On read, events of `type` at `from_schema` get `fn(data)` and schema + 1 (chained)."""
        name_part(type, "upcaster type")
        self._upcasters[(type, from_schema)] = fn

    # -- reads ----------------------------------------------------------------------------

    def read_stream(self, stream: str, from_version: int = 0, to_version: int | None = None
                    ) -> Iterator[RecordedEvent]:
        return reads.read_stream(self._env, self._upcasters, stream, from_version, to_version)

    def read_all(self, from_position: int = 0, to_position: int | None = None, *,
                 types: Iterable[str] | str | None = None, stream_prefix: str | None = None
                 ) -> Iterator[RecordedEvent]:
        """Events in position order; `types`/`stream_prefix` filters skip payload decoding."""
        return reads.read_all(self._env, self._upcasters, from_position, to_position, types,
                              stream_prefix)

    def follow(self, from_position: int = 0, *, poll_interval: float = 0.05,
               stop: Any = None) -> Iterator[RecordedEvent]:
        """Tail the log (also written by other processes) until `stop` is set."""
        return reads.follow(self._env, self._upcasters, from_position, poll_interval, stop)

    def stream_version(self, stream: str) -> int:
        return reads.current_version(self._env, stream)

    def last_event(self, stream: str) -> RecordedEvent | None:
        """The stream's newest event (None when the stream does not exist)."""
        return reads.last_event(self._env, self._upcasters, stream)

    def last_position(self) -> int:
        return reads.last_position(self._env)

    def streams(self, prefix: str = "") -> Iterator[str]:
        return iter(reads.stream_names(self._env, prefix))

    def load_snapshot(self, stream: str) -> Snapshot | None:
        skey = stream_key(stream)
        with self._env.reading() as txn:
            raw = txn.get(skey, db=self._env.snapshots)
        if raw is None:
            return None
        try:
            version, digest, state = msgpack.unpackb(raw)
            return Snapshot(stream, int(version), dict(state), bytes(digest).hex())
        except Exception as exc:  # noqa: BLE001 - any decode failure means damage
            raise StoreCorrupted(f"snapshot of stream {stream!r} cannot be decoded: {exc!r}"
                                 ) from None

    def checkpoint(self) -> tuple[int, str]:
        """(last position, its hash hex): keep it outside the store to detect rewrites."""
        with self._env.reading() as txn:
            cur = txn.cursor(db=self._env.events)
            if not cur.last():
                return -1, GENESIS.hex()
            return POS.unpack(cur.key())[0], cur.value()[:HASH_LEN].hex()

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyReport:
        """Walk the hash chain; with a checkpoint() anchor also detect truncation."""
        return verify_chain(self._env, anchor)

    def commit_stats(self) -> tuple[int, int]:
        """(write transactions, operations in them) since open: shows group commit."""
        return self._writer.batches, self._writer.requests


__all__ = ["EventStore"]
