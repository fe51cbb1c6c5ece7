"""Guest path mapping and id validation: nothing the host sends may escape the guest dir."""

from __future__ import annotations

import re
from pathlib import Path

KATA_SHARED_PREFIX = "/run/kata-containers/shared/containers/"

# Below the guest dir, private to the agent: runc's state root, bundles, console sockets.
PRIVATE_DIR = ".agent"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class PathRefused(ValueError):
    """A guest path or id that would leave the agent's confinement."""


def check_id(kind: str, value: str, rpc: str, *, allow_empty: bool = False) -> str:
    """Refuse ids that could act as paths (separators, '..', empty)."""
    if allow_empty and value == "":
        return value
    if not _ID_RE.match(value) or value in (".", ".."):
        raise PathRefused(f"{rpc}: invalid {kind} {value!r} (must match {_ID_RE.pattern})")
    return value


def confined(root: Path, relative: str, what: str) -> Path:
    """Join `relative` under `root`, refusing '..' and symlinks that resolve outside root."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathRefused(f"{what}: path {relative!r} contains '..'")
    root = root.resolve()
    candidate = root.joinpath(*parts)
    resolved = candidate.resolve()  # follows every existing symlink component
    if resolved != root and root not in resolved.parents:
        raise PathRefused(f"{what}: path {relative!r} resolves to {resolved}, outside {root}")
    return candidate


class GuestPaths:
    """Maps absolute guest paths to host paths under --guest-dir or --shared-dir."""

    def __init__(self, guest_dir: Path, shared_dir: Path) -> None:
        self.guest_dir = guest_dir.resolve()
        self.shared_dir = shared_dir.resolve()
        self.private = self.guest_dir / PRIVATE_DIR

    def host(self, guest_path: str, what: str) -> Path:
        """Host path for a guest path; the Kata shared prefix maps to the shared dir.

        The agent's own dir (runc's state, bundles, console sockets) is never reachable,
        nor any dir that holds it: a container that could bind it could rewrite runc's
        state or catch another container's terminal."""
        if not guest_path.startswith("/"):
            raise PathRefused(f"{what}: guest path {guest_path!r} is not absolute")
        prefix = KATA_SHARED_PREFIX.rstrip("/")
        if guest_path == prefix or guest_path.startswith(KATA_SHARED_PREFIX):
            return confined(self.shared_dir, guest_path[len(prefix):], what)
        host = confined(self.guest_dir, guest_path, what)
        resolved = host.resolve()
        if resolved == self.private or self.private in resolved.parents \
                or resolved in self.private.parents:
            raise PathRefused(f"{what}: guest path {guest_path!r} holds the agent's own state")
        return host

    def resolv_conf(self) -> Path:
        return self.guest_dir / "etc" / "resolv.conf"

