"""What can go wrong between a host and the fleet log, each with its own exit code."""

from __future__ import annotations

from ..errors import Conflict, InvalidRequest, NotFound, SandboxError


class FleetUnreachable(SandboxError):
    """No NATS server answered at any of the given URLs (exit 5)."""

    exit_code = 5


class FleetAuthFailed(InvalidRequest):
    """The server refused the credentials, nkey or TLS settings we were given (exit 2)."""


class StreamConflict(Conflict):
    """The stream exists with other subjects, overlaps another stream, or already holds a
    different history for this host id (exit 3)."""


class FleetStreamMissing(NotFound):
    """The fleet views were asked to read a stream that does not exist (exit 4)."""


class FleetVerifyFailed(SandboxError):
    """`fleet verify` found gaps, reorderings or hashes that do not chain (exit 1)."""


class LocalLogMismatch(SandboxError):
    """An event of the local log does not re-encode to the bytes its hash covers, so
    the far side could not verify it; shipping stops rather than send it (exit 1)."""
