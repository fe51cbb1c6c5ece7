"""Domain-free, durable, tamper-evident event log (LMDB + msgpack)."""

from .errors import (
    EventStoreError,
    IdempotencyConflict,
    StoreCorrupted,
    StoreTruncated,
    WrongExpectedVersion,
)
from .model import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    NewEvent,
    RecordedEvent,
    Snapshot,
    VerifyReport,
)
from .store import EventStore

__all__ = [
    "ANY", "NO_STREAM", "STREAM_EXISTS", "AppendResult", "EventStore", "EventStoreError",
    "IdempotencyConflict", "NewEvent", "RecordedEvent", "Snapshot", "StoreCorrupted",
    "StoreTruncated", "VerifyReport", "WrongExpectedVersion",
]
