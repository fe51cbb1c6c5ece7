"""Event ids: an id the store generates names its event's position, so it needs no index.

A generated id is a time-ordered UUIDv7 (48-bit millisecond timestamp, version 7,
variant 10) whose last 48 bits, the uuid's last group of 12 hex digits, are the position
of its event; the 26 bits between come from the process's random generator. Finding the
event of such an id is one read of that position, so an append of generated ids writes
no id-index entry and looks none up (a fresh id cannot be stored yet): one B-tree leaf
fewer per commit and less work under the write lock. Ids a caller passes go through the
id index, except one that names the very position it lands at (found the same way).
"""

from __future__ import annotations

import random
import time

POSITION_BITS = 48
MAX_POSITION = (1 << POSITION_BITS) - 1
"""Generated ids exist for positions 0 .. 2**48-1."""
_getrandbits = random.getrandbits  # seeded from os.urandom per process


def generated_prefix() -> str:
    """The first 24 characters of a new id (all but the position): taken outside the lock."""
    rand = _getrandbits(26)
    ms = time.time_ns() // 1_000_000
    return "%08x-%04x-%04x-%04x-" % (  # noqa: UP031 - one call, the fastest spelling
        ms >> 16, ms & 0xFFFF, 0x7000 | rand >> 14, 0x8000 | rand & 0x3FFF)


def self_named_position(id_bytes: bytes) -> int | None:
    """The position a UUIDv7 names in its last 48 bits (None for other uuids)."""
    if id_bytes[6] >> 4 == 7 and id_bytes[8] >> 6 == 0b10:
        return int.from_bytes(id_bytes[10:], "big")
    return None
