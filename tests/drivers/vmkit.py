"""Shared pieces of the qemu driver tests."""

from __future__ import annotations

import tempfile
from pathlib import Path


def private_dir(prefix: str) -> Path:
    """A 0700 dir with short paths (unix sockets must stay under 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
