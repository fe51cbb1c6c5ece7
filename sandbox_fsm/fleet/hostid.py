"""A stable id for this host, kept in its state dir, that names its events in the fleet.

It becomes a NATS subject token and the prefix of every message id, so it is restricted
to letters, digits, '_' and '-'. It is created on the first successful `sbx ship` only:
a refused ship writes nothing.
"""

from __future__ import annotations

import os
import re
import secrets
import socket

from ..errors import InvalidRequest

HOST_ID_FILE = "host-id"
_HOST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def validate_host_id(value: str, where: str = "host id") -> str:
    if not _HOST_ID_RE.fullmatch(value):
        raise InvalidRequest(f"invalid {where} {value!r}: must match {_HOST_ID_RE.pattern} "
                             "(letters, digits, '_', '-'; at most 64)")
    return value


def stored_host_id(state_dir: str | os.PathLike[str]) -> str | None:
    """The id kept in the state dir, or None when there is none yet."""
    path = os.path.join(state_dir, HOST_ID_FILE)
    try:
        with open(path, encoding="ascii") as f:
            text = f.read(128).strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read the host id at {path!r}: {exc}") from None
    return validate_host_id(text, f"host id in {path!r}")


def new_host_id() -> str:
    """The host name (sanitized) and random bits: readable, and unique among clones."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()).strip("-_")[:40] or "host"
    return f"{name}-{secrets.token_hex(4)}"


def resolve_host_id(state_dir: str | os.PathLike[str], configured: str = "") -> str:
    """The configured id, else the stored one, else a fresh one (not yet saved)."""
    if configured:
        return validate_host_id(configured)
    return stored_host_id(state_dir) or new_host_id()


def save_host_id(state_dir: str | os.PathLike[str], host_id: str) -> None:
    """Keep `host_id` in the state dir (0600) unless one is there already; atomic."""
    path = os.path.join(state_dir, HOST_ID_FILE)
    if os.path.exists(path):
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (host_id + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)          # never replaces an id another process saved first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
