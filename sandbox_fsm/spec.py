"""What a caller asks for: a sandbox and a container, as plain, validated values.

They are recorded verbatim in the OperationStarted event of their create operation, so
`to_dict`/`from_dict` round-trip through msgpack.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from agent_io import convert

from .errors import InvalidRequest
from .guestspec.blockdev import BlockDevice
from .host import InvalidId, validate_id

NETWORK_KEYS = ("interfaces", "routes", "neighbors")
WIRE_HEADROOM = 64 * 1024   # room in a CreateContainer request for storages and devices


def _no_nul(text: str, what: str) -> None:
    """NUL cannot reach an exec'd program (argv, env and paths are C strings)."""
    if "\0" in text:
        raise InvalidRequest(f"{what} {text[:60]!r} contains a NUL byte")


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
    network: dict | None = None      # interfaces / routes / neighbours (see network_entries)
    share_pidns: bool = False        # containers share one sandbox PID namespace in the guest

    def validated(self) -> SandboxConfig:
        """Checked, with `network` normalised to plain dicts (as the log records it)."""
        _check_id(self.id, "sandbox id")
        if not isinstance(self.hostname, str) or "\0" in self.hostname:
            raise InvalidRequest(f"sandbox {self.id!r}: hostname must be a string without NUL")
        if not self.network:
            return self
        try:
            network = network_dict(*network_entries(self.network))
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"sandbox {self.id!r}: network: {exc}") from exc
        return replace(self, network=network)

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
    # Drives the hypervisor attached (config entries, see guestspec.BlockDevice's fields):
    rootfs_device: dict | None = None        # the rootfs is on this drive
    devices: tuple[dict, ...] = ()           # --device drives, each with "container_path"
    block_volumes: tuple[dict, ...] = ()     # volumes on drives, each with "destination"

    def validated(self) -> ContainerConfig:
        _check_id(self.id, "container id")
        if not self.args or not all(isinstance(a, str) for a in self.args):
            raise InvalidRequest(f"container {self.id!r}: args must be a non-empty list of strings")
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key:
                raise InvalidRequest(f"container {self.id!r}: bad environment name {key!r}")
            _no_nul(value, f"container {self.id!r}: environment {key}")
        for text, what in ((self.cwd, "cwd"), *((a, "args") for a in self.args)):
            _no_nul(text, f"container {self.id!r}: {what}")
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
        try:
            self.drives()
            _check_images(self)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"container {self.id!r}: {exc}") from exc
        self._check_wire()
        return self

    def _check_wire(self) -> None:
        """Refuse now what CreateContainer could not carry, or what its OCI spec cannot
        hold (a malformed `linux`, `ociVersion: 2`), before any event is written."""
        try:
            convert.oci_spec_to_proto(self.oci or {})
            size = convert.oci_spec_to_proto({
                **(self.oci or {}), "hostname": self.hostname, "annotations": self.annotations,
                "process": {"args": list(self.args), "env": convert.env_list(self.env),
                            "cwd": self.cwd},
                "mounts": [{"source": m.source, "destination": m.destination, "type": m.type,
                            "options": list(m.options)} for m in self.mounts]}).ByteSize()
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"container {self.id!r}: {exc}") from None
        if size > convert.WIRE_LIMIT - WIRE_HEADROOM:
            raise InvalidRequest(
                f"container {self.id!r}: its OCI spec is {size} bytes on the wire; the agent "
                f"protocol carries at most {convert.WIRE_LIMIT - WIRE_HEADROOM}")

    def drives(self) -> tuple[BlockDevice | None, list[tuple[BlockDevice, str]],
                              list[tuple[BlockDevice, str]]]:
        """(rootfs drive, [(drive, container path)], [(drive, volume destination)])."""
        rootfs = block_device(self.rootfs_device, None, "rootfs_device") \
            if self.rootfs_device else None
        devices = [block_device(d, "container_path", f"devices[{i}]")
                   for i, d in enumerate(self.devices)]
        volumes = [block_device(d, "destination", f"block_volumes[{i}]")
                   for i, d in enumerate(self.block_volumes)]
        return rootfs, devices, volumes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["args"] = list(self.args)
        d["mounts"] = [{**asdict(m), "options": list(m.options)} for m in self.mounts]
        d["devices"] = [dict(x) for x in self.devices]
        d["block_volumes"] = [dict(x) for x in self.block_volumes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContainerConfig:
        mounts = tuple(Mount(**{**m, "options": tuple(m.get("options", ()))})
                       for m in d.get("mounts", ()))
        return cls(**{**d, "args": tuple(d["args"]), "mounts": mounts,
                      "devices": tuple(d.get("devices", ())),
                      "block_volumes": tuple(d.get("block_volumes", ()))})


IMAGE_FSTYPES = ("ext4", "ext3", "ext2", "xfs")


def _check_images(cfg: ContainerConfig) -> None:
    """An `image` is a path from the caller: only on the rootfs drive, absolute, a regular
    file itself (not a symlink, device or dir), with a file system we mount."""
    for where, entry in [*(("devices", d) for d in cfg.devices),
                         *(("block_volumes", d) for d in cfg.block_volumes)]:
        if entry.get("image"):
            raise ValueError(f"{where}: a drive 'image' is supported on rootfs_device only")
    entry = cfg.rootfs_device or {}
    image = entry.get("image")
    if not image:
        return
    if not isinstance(image, str) or not image.startswith("/") or "\0" in image \
            or ".." in image.split("/"):
        raise ValueError(f"rootfs_device: image {image!r} is not a clean absolute path")
    try:
        st = os.lstat(image)
    except OSError as exc:
        raise ValueError(f"rootfs_device: image {image!r}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"rootfs_device: image {image!r} is not a regular file")
    if entry.get("fstype") not in IMAGE_FSTYPES:
        raise ValueError(f"rootfs_device: fstype {entry.get('fstype')!r} of an image is not "
                         f"one of {', '.join(IMAGE_FSTYPES)}")
    if not isinstance(entry.get("read_only", False), bool):
        raise ValueError("rootfs_device: read_only must be true or false")


def block_device(entry: Mapping[str, Any], path_key: str | None,
                 where: str) -> Any:
    """A drive entry as a BlockDevice (with its path when `path_key` names one)."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected an object, got {entry!r}")
    names = {f.name for f in fields(BlockDevice)}
    extra = set(entry) - names - {path_key}
    if extra:
        raise ValueError(f"{where}: unknown keys {sorted(extra)}; known: {sorted(names)}")
    if "id" not in entry:
        raise ValueError(f"{where}: a drive needs an 'id'")
    dev = BlockDevice(**{k: v for k, v in entry.items() if k != path_key})
    if path_key is None:
        return dev
    path = entry.get(path_key)
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{where}: {path_key} {path!r} is not an absolute path")
    return dev, path


# -- the sandbox network --------------------------------------------------------------------

_NET_TYPES = {"interfaces": convert.NetInterface, "routes": convert.NetRoute,
              "neighbors": convert.ArpNeighbor}


def _ip(value: Any, where: str) -> convert.IPAddr:
    """`"10.0.0.2/24"` (a bare address is a host address) or an IPAddr."""
    if isinstance(value, convert.IPAddr):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{where}: address {value!r} is not a string like '10.0.0.2/24'")
    address, sep, prefix = value.partition("/")
    try:
        full = ipaddress.ip_address(address).max_prefixlen
        if sep and not prefix.isdigit():
            raise ValueError(f"prefix {prefix!r} is not a number")
        return convert.IPAddr(address, int(prefix) if sep else full)
    except ValueError as exc:
        raise ValueError(f"{where}: address {value!r}: {exc}") from None


def _net_entry(cls: type, value: Any, where: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object, got {value!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(value) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    kwargs = dict(value)
    for name, f in known.items():
        if name in kwargs and isinstance(f.default, int) and (
                not isinstance(kwargs[name], int) or isinstance(kwargs[name], bool)):
            raise ValueError(f"{where}: {name} {kwargs[name]!r} is not an integer")
        if name in kwargs and isinstance(f.default, str) and not isinstance(kwargs[name], str):
            raise ValueError(f"{where}: {name} {kwargs[name]!r} is not a string")
    if cls is convert.NetInterface:
        kwargs["addresses"] = tuple(_ip(a, f"{where}.addresses[{i}]")
                                    for i, a in enumerate(kwargs.get("addresses", ())))
        if not kwargs.get("name"):
            raise ValueError(f"{where}: an interface needs a name")
    if cls is convert.ArpNeighbor:
        if "ip" not in kwargs:
            raise ValueError(f"{where}: a neighbour needs an 'ip'")
        kwargs["ip"] = _ip(kwargs["ip"], f"{where}.ip")
    return cls(**kwargs)


def network_entries(network: Mapping[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """`{"interfaces": [...], "routes": [...], "neighbors": [...]}` as agent_io.convert's
    NetInterface / NetRoute / ArpNeighbor (entries may be those dataclasses or dicts of their
    fields; addresses are `"addr/prefix"` strings). ValueError names the bad entry."""
    if not isinstance(network, Mapping):
        raise ValueError(f"expected an object with {', '.join(NETWORK_KEYS)}")
    unknown = set(network) - set(NETWORK_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {', '.join(NETWORK_KEYS)}")
    out = []
    for key in NETWORK_KEYS:
        items = network.get(key) or ()
        if isinstance(items, str | bytes | Mapping):
            raise ValueError(f"{key}: expected a list")
        out.append([_net_entry(_NET_TYPES[key], v, f"{key}[{i}]") for i, v in enumerate(items)])
    return out[0], out[1], out[2]


def network_dict(interfaces: list[Any], routes: list[Any], neighbors: list[Any]) -> dict:
    """The plain, msgpack-safe form of network entries (what the log records)."""
    def text(ip: convert.IPAddr) -> str:
        return f"{ip.address}/{ip.prefix_len}"

    return {
        "interfaces": [{**asdict(i), "addresses": [text(a) for a in i.addresses]}
                       for i in interfaces],
        "routes": [asdict(r) for r in routes],
        "neighbors": [{**asdict(n), "ip": text(n.ip)} for n in neighbors],
    }


def _check_id(value: str, kind: str) -> None:
    try:
        validate_id(value, kind)
    except InvalidId as exc:
        raise InvalidRequest(str(exc)) from exc
