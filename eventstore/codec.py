"""Record layout: validation, encoding and lazy decoding of stored event values.

A stored value is ``hash[32]`` followed by one msgpack array::

    [type, stream, version, event_id, recorded_at, schema, data, metadata]

Type and stream are short msgpack strings (at most 200 bytes: fixstr or str8) right
after the array header at offset 32, so filters compare raw bytes and never unpack a
record they skip; the other header fields come before data, so a streaming Unpacker
reads them without touching data (`header_of`, `record_is`); a full read is one `unpackb`.
The hash covers ``prev_hash | position | value[32:]``.
"""

from __future__ import annotations

import hashlib
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgpack

from .errors import StoreCorrupted
from .ids import MAX_POSITION, generated_prefix
from .model import NewEvent, RecordedEvent

POS = struct.Struct(">Q")
HASH_LEN = 32
GENESIS = bytes(HASH_LEN)
MAX_NAME_BYTES = 200
MAX_RECORD_BYTES = 16 * 1024 * 1024

Upcasters = Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]

_packb = msgpack.packb
_unpackb = msgpack.unpackb
_sha256 = hashlib.sha256
_ARRAY8 = b"\x98"  # msgpack fixarray header, 8 elements
_ID_STR = b"\xd9\x24"  # msgpack str8 header of a 36-character uuid
_FIXINT = [bytes((i,)) for i in range(128)]  # msgpack of versions 0..127
_SCALARS = frozenset((str, int, float, bool, bytes, type(None)))
_PLAIN_DEPTH = 32
_NAMES_CACHED = 4096
_names: dict[str, bytes] = {}  # validated name -> msgpack str (dict ops are GIL-atomic)


class Encoded:
    """An event validated and packed outside the write lock; version and position later.

    `id_bytes`/`event_id` are None for an id the store generates: its last 12 hex digits
    are the position (see ids.py), added under the lock after `id_head`.
    """

    __slots__ = ("id_bytes", "event_id", "type_part", "id_head", "rest")

    def __init__(self, id_bytes: bytes | None, event_id: str | None, type_part: bytes,
                 id_head: bytes, rest: bytes) -> None:
        self.id_bytes = id_bytes
        self.event_id = event_id
        self.type_part = type_part  # msgpack str
        self.id_head = id_head  # packed event_id, or all of it but the position
        self.rest = rest  # packed recorded_at, schema, data, metadata


def name_part(name: object, what: str) -> bytes:
    """A stream name or event type as a msgpack str, after checking it."""
    cached = _names.get(name) if name.__class__ is str else None
    if cached is not None:
        return cached
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError(f"{what} must not be empty")
    raw = name.encode("utf-8")
    if len(raw) > MAX_NAME_BYTES:
        raise ValueError(
            f"{what} {name[:40]!r}... is {len(raw)} bytes UTF-8, limit {MAX_NAME_BYTES}")
    if b"\x00" in raw:
        raise ValueError(f"{what} {name!r} contains NUL")
    if len(_names) >= _NAMES_CACHED:
        _names.clear()
    part = _names[name] = _packb(name)
    return part


def stream_key(stream: object) -> bytes:
    """The stream name as index-key bytes (validated UTF-8)."""
    return name_bytes(name_part(stream, "stream name"))


def name_bytes(part: bytes) -> bytes:
    """UTF-8 bytes inside a packed name (fixstr: 1 byte header, str8: 2)."""
    return part[1:] if part[0] < 0xC0 else part[2:]


def check_dict(value: object, what: str) -> dict[str, Any]:
    """A dict with str keys, or a TypeError that says which part is wrong."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{what} has a non-str key {key!r}")
    return value


def pack_value(value: object, what: str) -> bytes:
    """msgpack bytes that are known to unpack again (nested keys, types checked)."""
    try:
        packed = _packb(value)
        _unpackb(packed)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{what} is not msgpack-encodable: {exc}") from None
    return packed


def _str_keyed(value: object) -> bool:
    """True for a plain dict whose keys are all str (the common, cheap case)."""
    if value.__class__ is not dict:
        return False
    for key in value:
        if key.__class__ is not str:
            return False
    return True


def _reads_back(value: dict[str, Any], depth: int = 0) -> bool:
    """True for str-keyed dicts and lists of plain scalars that msgpack packs: they unpack
    as they were, so the round trip that proves it for anything else is not needed."""
    if depth > _PLAIN_DEPTH:
        return False
    for key, item in value.items():
        if key.__class__ is not str:
            return False
        if item.__class__ not in _SCALARS and not _plain_item(item, depth + 1):
            return False
    return True


def _plain_item(item: object, depth: int) -> bool:
    if type(item) is dict:
        return _reads_back(item, depth)
    if type(item) is list and depth <= _PLAIN_DEPTH:
        return all(i.__class__ in _SCALARS or _plain_item(i, depth + 1) for i in item)
    return False


def encode_event(event: NewEvent, index: int, stream: str) -> Encoded:
    """Validate one NewEvent and pack everything that does not depend on the store.

    The common case runs checks without building any message; a failed check redoes
    the slow check that names the event, so every message stays as precise.
    """
    if not isinstance(event, NewEvent):
        raise TypeError(f"{_where(index, stream)} must be a NewEvent, got {type(event).__name__}")
    etype, data, meta, event_id, schema = event
    type_part = _names.get(etype) if etype.__class__ is str else None
    if type_part is None:
        type_part = name_part(etype, f"type of {_where(index, stream)}")
    if not _str_keyed(data):
        data = check_dict(data, f"data of {_where(index, stream)}")
    if meta is None:
        meta = {}
    elif not _str_keyed(meta):
        meta = check_dict(meta, f"metadata of {_where(index, stream)}")
    if schema.__class__ is not int or not 0 < schema < 2**32:
        _check_schema(schema, index, stream)
    if event_id is None:
        id_bytes, id_head = None, _ID_STR + generated_prefix().encode()
    else:
        try:
            parsed = uuid.UUID(event_id)
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                f"event_id of {_where(index, stream)} is not a uuid: {event_id!r}") from None
        id_bytes, event_id = parsed.bytes, str(parsed)
        id_head = _packb(event_id)
    try:
        payload = _packb((data, meta))[1:]  # drop the 2-array header: the record continues
        if not (_reads_back(data) and _reads_back(meta)):
            _unpackb(b"\x92" + payload)  # nested keys and types must read back
    except (TypeError, ValueError, OverflowError):  # find which of the two, for the message
        pack_value(data, f"data of {_where(index, stream)}")
        pack_value(meta, f"metadata of {_where(index, stream)}")
        raise
    if len(payload) + len(type_part) + 512 > MAX_RECORD_BYTES:
        raise ValueError(f"{_where(index, stream)} is {len(payload)} bytes packed, "
                         f"limit {MAX_RECORD_BYTES}")
    rest = _packb((time.time_ns(), schema))[1:] + payload  # drop the array header
    return Encoded(id_bytes, event_id, type_part, id_head, rest)


def _where(index: int, stream: str) -> str:
    return f"event {index} for stream {stream!r}"


def _check_schema(schema: object, index: int, stream: str) -> None:
    """Accept an int subclass in range (as before); refuse anything else with a message."""
    if not isinstance(schema, int) or not 0 < schema < 2**32:
        raise ValueError(f"schema of {_where(index, stream)} must be an int in 1..2**32-1, "
                         f"got {schema!r}")


def record_body(enc: Encoded, stream_part: bytes, version: int, position: int) -> bytes:
    """The stored value without its hash: the canonical bytes the chain covers."""
    packed_version = _FIXINT[version] if version < 128 else _packb(version)
    if enc.id_bytes is not None:
        return b"".join((_ARRAY8, enc.type_part, stream_part, packed_version, enc.id_head,
                         enc.rest))
    if position > MAX_POSITION:
        raise ValueError(f"position {position} is past the last one an id can name")
    return b"".join((_ARRAY8, enc.type_part, stream_part, packed_version, enc.id_head,
                     b"%012x" % position, enc.rest))


def chain_hash(prev: bytes, position: int, body: bytes | memoryview) -> bytes:
    """Hash of one record: previous hash, its position, its canonical bytes."""
    return _sha256(b"".join((prev, POS.pack(position), body))).digest()


def type_prefixes(types: str | Iterable[str]) -> tuple[bytes, ...]:
    """Byte prefixes (at offset 33) of records whose type is one of `types`."""
    if isinstance(types, str):
        types = [types]
    return tuple(name_part(t, "type filter") for t in types)


def _after_name(value: bytes, off: int) -> tuple[int, int]:
    """(start, length) of the UTF-8 bytes of the packed name at `off`."""
    head = value[off]
    if head < 0xC0:  # fixstr
        return off + 1, head & 0x1F
    return off + 2, value[off + 1]  # str8


def stream_startswith(value: bytes, prefix: bytes) -> bool:
    """True when the record's stream name starts with `prefix` (UTF-8 bytes)."""
    start, n = _after_name(value, 33)
    start, n = _after_name(value, start + n)
    return n >= len(prefix) and value.startswith(prefix, start)


_new_recorded = tuple.__new__


def decode(position: int, value: bytes, upcasters: Upcasters) -> RecordedEvent:
    """Full decode of a stored value; any damage becomes StoreCorrupted(position)."""
    try:
        etype, stream, version, event_id, recorded_at, schema, data, meta = _unpackb(value[32:])
        if data.__class__ is not dict or meta.__class__ is not dict:
            raise ValueError("data or metadata is not a map")
    except Exception as exc:  # noqa: BLE001 - any decode failure means a damaged record
        raise StoreCorrupted(
            f"record at position {position} cannot be decoded: {exc!r}", position) from None
    if upcasters:
        fn = upcasters.get((etype, schema))
        while fn is not None:
            data = fn(data)
            schema += 1
            fn = upcasters.get((etype, schema))
    return _new_recorded(RecordedEvent, (position, stream, version, etype, data, meta, event_id,
                                         recorded_at, schema, value[:32].hex()))


def header_of(position: int, value: bytes) -> tuple[str, str, int, str]:
    """(type, stream, version, event id) of a stored value, without unpacking data."""
    try:
        unpacker = msgpack.Unpacker()
        unpacker.feed(value[32:])
        if unpacker.read_array_header() != 8:
            raise ValueError("record is not an 8-element array")
        etype, stream, version, event_id = (unpacker.unpack() for _ in range(4))
        if not (isinstance(etype, str) and isinstance(stream, str)
                and isinstance(version, int) and isinstance(event_id, str)):
            raise ValueError("header fields have the wrong types")
        return etype, stream, version, event_id
    except Exception as exc:  # noqa: BLE001 - any decode failure means a damaged record
        raise StoreCorrupted(
            f"record at position {position} has a damaged header: {exc!r}", position) from None


def record_is(value: bytes, skey: bytes, version: int) -> bool:
    """True when a stored value names stream `skey` (UTF-8) at `version`: an index entry
    that points elsewhere is damage, never another stream's event."""
    try:
        if value[32:33] != _ARRAY8:
            return False
        start, n = _after_name(value, 33)
        start, n = _after_name(value, start + n)
        return (n == len(skey) and value.startswith(skey, start)
                and value.startswith(_packb(version), start + n))
    except IndexError:
        return False
