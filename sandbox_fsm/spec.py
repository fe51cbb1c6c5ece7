"""What a caller asks for: a sandbox and a container, as plain, validated values.

They are recorded verbatim in the OperationStarted event of their create operation, so
`to_dict`/`from_dict` round-trip through msgpack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agent_io import convert

from .errors import InvalidRequest
from .host import InvalidId, validate_id


@dataclass(frozen=True)
class Mount:
    """A host path bind-mounted into a container at `destination`."""

    source: str
    destination: str
    readonly: bool = False
    type: str = "bind"
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxConfig:
    id: str
    hostname: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    dns: tuple[str, ...] = ()
    oci: dict | None = None          # the sandbox's OCI spec, when it came from a bundle
    network: dict | None = None      # interfaces / routes / neighbours (see docs)

    def validated(self) -> SandboxConfig:
        _check_id(self.id, "sandbox id")
        if not isinstance(self.hostname, str) or "\0" in self.hostname:
            raise InvalidRequest(f"sandbox {self.id!r}: hostname must be a string without NUL")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dns"] = list(self.dns)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SandboxConfig:
        return cls(**{**d, "dns": tuple(d.get("dns", ()))})


@dataclass(frozen=True)
class ContainerConfig:
    id: str
    args: tuple[str, ...] = ("sh",)
    env: dict[str, str] = field(default_factory=lambda: {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})
    cwd: str = "/"
    user: str = "0:0"
    rootfs: str | None = None        # None: an empty rootfs, so host commands run as they are
    mounts: tuple[Mount, ...] = ()
    terminal: bool = False
    hostname: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    oci: dict | None = None          # a full OCI spec (from a bundle); the fields above win

    def validated(self) -> ContainerConfig:
        _check_id(self.id, "container id")
        if not self.args or not all(isinstance(a, str) for a in self.args):
            raise InvalidRequest(f"container {self.id!r}: args must be a non-empty list of strings")
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                raise InvalidRequest(f"container {self.id!r}: bad environment name {key!r}")
        try:
            convert.oci_user(self.user)
        except ValueError as exc:
            raise InvalidRequest(f"container {self.id!r}: {exc}") from exc
        if not self.cwd.startswith("/"):
            raise InvalidRequest(f"container {self.id!r}: cwd {self.cwd!r} is not absolute")
        for m in self.mounts:
            if not m.source.startswith("/") or not m.destination.startswith("/"):
                raise InvalidRequest(
                    f"container {self.id!r}: mount {m.source!r}:{m.destination!r} needs "
                    "absolute paths")
            if ".." in m.destination.split("/"):
                raise InvalidRequest(
                    f"container {self.id!r}: mount destination {m.destination!r} contains '..'")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["args"] = list(self.args)
        d["mounts"] = [{**asdict(m), "options": list(m.options)} for m in self.mounts]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContainerConfig:
        mounts = tuple(Mount(**{**m, "options": tuple(m.get("options", ()))})
                       for m in d.get("mounts", ()))
        return cls(**{**d, "args": tuple(d["args"]), "mounts": mounts})


def _check_id(value: str, kind: str) -> None:
    try:
        validate_id(value, kind)
    except InvalidId as exc:
        raise InvalidRequest(str(exc)) from exc
