"""Value types of the public API: what callers pass in and get back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

ANY = "any"
NO_STREAM = "no_stream"
STREAM_EXISTS = "stream_exists"

ExpectedVersion = int | str


class NewEvent(NamedTuple):
    """An event to append. `event_id` (uuid string) is generated when None.

    A tuple, like RecordedEvent, because one is built for every append."""

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None
    event_id: str | None = None
    schema: int = 1


class RecordedEvent(NamedTuple):
    """A stored event. A tuple so decoding a million of them stays cheap."""

    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    event_id: str
    recorded_at: int
    schema: int
    hash: str


class AppendResult(NamedTuple):
    """Where an append landed: global positions and the stream's new version."""

    first_position: int
    last_position: int
    version: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Folded state of a stream up to `version`; `hash` is that event's hash (hex)."""

    stream: str
    version: int
    state: dict[str, Any]
    hash: str = ""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of a hash-chain walk; `first_bad_position` is None when ok."""

    ok: bool
    checked: int
    first_bad_position: int | None = None
    reason: str = ""
    last_position: int = -1
    last_hash: str = field(default="")
