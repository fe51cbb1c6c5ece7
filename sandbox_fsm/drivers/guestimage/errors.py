"""Why a guest image cannot be built: bad input from the configuration or the host."""

from __future__ import annotations

from ...errors import InvalidRequest


class ImageError(InvalidRequest):
    """The guest image cannot be built from this host's files (exit code 2)."""
