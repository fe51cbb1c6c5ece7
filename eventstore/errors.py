"""Exceptions raised by the event store; all derive from EventStoreError."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class of every event store error."""


class WrongExpectedVersion(EventStoreError):
    """The stream is not at the version the caller expected; nothing was written."""

    def __init__(self, stream: str, expected: int | str, actual: int) -> None:
        super().__init__(
            f"stream {stream!r}: expected version {expected}, actual version {actual}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class IdempotencyConflict(EventStoreError):
    """Event ids were already stored, but not as exactly this append."""


class StoreCorrupted(EventStoreError):
    """A stored record cannot be decoded or the store's structure is broken."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class StoreTruncated(StoreCorrupted):
    """The data file is shorter than the pages its environment uses (reading would SIGBUS)."""
