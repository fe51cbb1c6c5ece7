"""One local event as one JetStream message, and back.

The payload is the record's canonical bytes: the msgpack array the host's hash chain
covers (see eventstore/codec.py). Shipping those exact bytes, with the record's hash
and its predecessor's in headers, lets any reader re-check every host's chain without
trusting the shipper or the stream. The message id `<host>:<position>` makes a
republish after a crash a duplicate that JetStream drops.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack

from eventstore import RecordedEvent, StoreCorrupted
from eventstore.codec import chain_hash, decode

SUBJECT_ROOT = "sbx.events"
SANDBOX_STREAM = "sandbox-"
MSG_ID = "Nats-Msg-Id"
POSITION = "Sbx-Position"
HASH = "Sbx-Hash"
PREV_HASH = "Sbx-Prev-Hash"
HOST = "Sbx-Host"


def host_filter(host: str | None) -> str:
    """The subject filter of one host's events, or of every host's."""
    return f"{SUBJECT_ROOT}.{host}.>" if host else f"{SUBJECT_ROOT}.>"


def _token(text: str) -> str:
    """A subject token: '.', '*', '>' and whitespace are not allowed in one."""
    out = []
    for ch in text:
        out.append(f"%{ord(ch):02X}" if ch in "%.*>" or ch.isspace() else ch)
    return "".join(out)


def subject_of(host: str, stream: str) -> str:
    """`sbx.events.<host>.<sandbox id>`; a stream of another kind keeps its name after '~'
    (sandbox ids start with a letter or digit, so the two never meet)."""
    last = stream[len(SANDBOX_STREAM):] if stream.startswith(SANDBOX_STREAM) else "~" + stream
    return f"{SUBJECT_ROOT}.{host}.{_token(last)}"


def canonical_body(event: RecordedEvent) -> bytes:
    """The bytes the host's hash covers, rebuilt from the decoded record."""
    return msgpack.packb([event.type, event.stream, event.version, event.event_id,
                          event.recorded_at, event.schema, event.data, event.metadata])


def chains(prev_hash: str, position: int, body: bytes, digest: str) -> bool:
    """True when `digest` is the hash of `body` at `position` after `prev_hash`."""
    return chain_hash(bytes.fromhex(prev_hash), position, body).hex() == digest


def headers_of(host: str, event: RecordedEvent, prev_hash: str) -> dict[str, str]:
    return {MSG_ID: f"{host}:{event.position}", HOST: host, POSITION: str(event.position),
            HASH: event.hash, PREV_HASH: prev_hash}


class Shipped(NamedTuple):
    """A message read back from the stream: where it sits, what it claims, its bytes."""

    seq: int                # stream sequence
    subject: str
    msg_id: str
    host: str
    position: int
    hash: str
    prev_hash: str
    body: bytes

    def event(self) -> RecordedEvent:
        """The RecordedEvent the payload encodes, as the host's own store decodes it."""
        return decode(self.position, bytes.fromhex(self.hash) + self.body, {})


class BadMessage(ValueError):
    """A message on a fleet subject whose headers cannot be what a shipper sends."""


def shipped_from(seq: int, subject: str, headers: dict[str, str] | None,
                 body: bytes) -> Shipped:
    """Parse a stream message; BadMessage names the sequence and what is wrong."""
    h = headers or {}
    host = subject.split(".")[2] if subject.count(".") >= 3 else ""
    try:
        position = int(h[POSITION])
        digest, prev = h[HASH], h[PREV_HASH]
        if len(bytes.fromhex(digest)) != 32 or len(bytes.fromhex(prev)) != 32:
            raise ValueError("hash is not 32 bytes")
    except (KeyError, ValueError) as exc:
        raise BadMessage(f"stream seq {seq} on {subject!r} has bad headers: {exc}") from None
    if position < 0 or h.get(HOST, host) != host:
        raise BadMessage(f"stream seq {seq} on {subject!r}: position {position} or host "
                         f"{h.get(HOST)!r} does not fit its subject")
    return Shipped(seq, subject, h.get(MSG_ID, ""), host, position, digest, prev, body)


__all__ = ["BadMessage", "Shipped", "StoreCorrupted", "canonical_body", "chains",
           "headers_of", "host_filter", "shipped_from", "subject_of"]
