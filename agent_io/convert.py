"""Conversions between the runtime's plain values and the Kata v1 wire messages.

Plain functions, no I/O. OCI specs use the runtime-spec JSON names (``ociVersion``,
``process.user.uid``...); the wire ``Spec`` uses Kata's capitalised Go names. Fields the
v1 wire does not carry (e.g. ``domainname``, ``process.user.umask``, the Windows and
Solaris sections) are dropped, as the Kata v1 runtime drops them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from agent_io import messages as m

MAX_ID = 2**32 - 1

# -- users, env, kernel modules ---------------------------------------------------------------


def _id(value: Any, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) > MAX_ID:
        raise ValueError(f"{what} {value!r} is not an integer in 0..{MAX_ID}")
    return int(text)


def oci_user(
    user: str,
    *,
    primary_gid: int | None = None,
    additional_gids: Iterable[int | str] = (),
    username: str = "",
) -> Any:
    """``"uid[:gid]"`` -> m.oci.User. An explicit ``primary_gid`` (the seed's
    ``cmd.PrimaryGroup``) wins over the gid in the string, as in the seed's
    ``cmdToKataProcess``; with neither, the gid is 0."""
    uid_text, sep, gid_text = user.partition(":")
    uid = _id(uid_text, f"uid in user {user!r}")
    gid = _id(gid_text, f"gid in user {user!r}") if sep else 0
    if primary_gid is not None:
        gid = _id(primary_gid, "primary gid")
    extra = [_id(g, f"supplementary gid in user {user!r}") for g in additional_gids]
    return m.oci.User(UID=uid, GID=gid, AdditionalGids=extra, Username=username)


def env_list(env: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[str]:
    """Pairs or a mapping -> ``["K=V", ...]`` in order; a key must be non-empty, without '='."""
    pairs = env.items() if isinstance(env, Mapping) else env
    out = []
    for key, value in pairs:
        if not key or "=" in key or "\0" in key:
            raise ValueError(f"environment variable name {key!r} is empty or contains '='/NUL")
        out.append(f"{key}={value}")
    return out


def kernel_modules(lines: Iterable[str]) -> list[Any]:
    """``"name p1 p2"`` lines -> m.agent.KernelModule list; blank lines are skipped."""
    out = []
    for line in lines:
        words = line.split()
        if words:
            out.append(m.agent.KernelModule(name=words[0], parameters=words[1:]))
    return out


# -- networking -------------------------------------------------------------------------------

_FAMILIES = {4: m.types.v4, 6: m.types.v6}


@dataclass(frozen=True)
class IPAddr:
    """An address with its prefix length (the wire's ``mask`` is the prefix length as text)."""

    address: str
    prefix_len: int

    def __post_init__(self) -> None:
        ip = ipaddress.ip_address(self.address)  # ValueError names the bad address
        if not 0 <= self.prefix_len <= ip.max_prefixlen:
            raise ValueError(f"prefix length {self.prefix_len} invalid for {self.address}")

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class NetInterface:
    name: str
    hw_addr: str = ""
    mtu: int = 0
    addresses: tuple[IPAddr, ...] = ()
    device: str = ""
    pci_path: str = ""
    type: str = ""
    raw_flags: int = 0


@dataclass(frozen=True)
class NetRoute:
    dest: str = ""
    gateway: str = ""
    device: str = ""
    source: str = ""
    scope: int = 0


@dataclass(frozen=True)
class ArpNeighbor:
    ip: IPAddr
    device: str = ""
    lladdr: str = ""
    state: int = 0
    flags: int = 0


def ip_to_proto(addr: IPAddr) -> Any:
    return m.types.IPAddress(family=_FAMILIES[addr.family], address=addr.address,
                             mask=str(addr.prefix_len))


def ip_from_proto(msg: Any) -> IPAddr:
    if not msg.mask.isdigit():
        raise ValueError(f"IPAddress {msg.address}: mask {msg.mask!r} is not a prefix length")
    addr = IPAddr(msg.address, int(msg.mask))
    if _FAMILIES[addr.family] != msg.family:
        raise ValueError(f"IPAddress {msg.address}: family {msg.family} does not match")
    return addr


def interface_to_proto(iface: NetInterface) -> Any:
    return m.types.Interface(
        device=iface.device, name=iface.name, mtu=iface.mtu, hwAddr=iface.hw_addr,
        IPAddresses=[ip_to_proto(a) for a in iface.addresses], pciPath=iface.pci_path,
        type=iface.type, raw_flags=iface.raw_flags,
    )


def interface_from_proto(msg: Any) -> NetInterface:
    return NetInterface(
        name=msg.name, hw_addr=msg.hwAddr, mtu=msg.mtu,
        addresses=tuple(ip_from_proto(a) for a in msg.IPAddresses), device=msg.device,
        pci_path=msg.pciPath, type=msg.type, raw_flags=msg.raw_flags,
    )


def route_to_proto(route: NetRoute) -> Any:
    return m.types.Route(dest=route.dest, gateway=route.gateway, device=route.device,
                         source=route.source, scope=route.scope)


def route_from_proto(msg: Any) -> NetRoute:
    return NetRoute(dest=msg.dest, gateway=msg.gateway, device=msg.device, source=msg.source,
                    scope=msg.scope)


def arp_neighbor_to_proto(neighbor: ArpNeighbor) -> Any:
    return m.types.ARPNeighbor(toIPAddress=ip_to_proto(neighbor.ip), device=neighbor.device,
                               lladdr=neighbor.lladdr, state=neighbor.state,
                               flags=neighbor.flags)


def arp_neighbor_from_proto(msg: Any) -> ArpNeighbor:
    return ArpNeighbor(ip=ip_from_proto(msg.toIPAddress), device=msg.device, lladdr=msg.lladdr,
                       state=msg.state, flags=msg.flags)


# -- OCI spec ---------------------------------------------------------------------------------

# Wire name -> runtime-spec JSON name where lowering the first letter is not enough.
_JSON_NAMES = {
    "Version": "ociVersion",
    "OOMScoreAdj": "oomScoreAdj",
    "UIDMappings": "uidMappings",
    "GIDMappings": "gidMappings",
    "HostID": "hostID",
    "ContainerID": "containerID",
    "UID": "uid",
    "GID": "gid",
    "CPU": "cpu",
    "Pagesize": "pageSize",
    "ClassID": "classID",
    "L3CacheSchema": "l3CacheSchema",
    "ThrottleReadIOPSDevice": "throttleReadIOPSDevice",
    "ThrottleWriteIOPSDevice": "throttleWriteIOPSDevice",
}
# The wire's Windows/Solaris are placeholders ({dummy}); their OCI shapes do not fit.
_SKIPPED = {"grpc.Spec": {"Windows", "Solaris"}}
# Zero/false is a meaningful value for these (root, a deny rule, a core limit of 0, the
# first syscall argument, device 8:0): always emitted by oci_spec_from_proto.
_ALWAYS = {
    "grpc.User": {"UID", "GID"},
    "grpc.LinuxIDMapping": {"HostID", "ContainerID", "Size"},
    "grpc.LinuxDeviceCgroup": {"Allow"},
    "grpc.POSIXRlimit": {"Hard", "Soft"},
    "grpc.LinuxSeccompArg": {"Index", "Value"},
    "grpc.LinuxDevice": {"Major", "Minor"},
    "grpc.LinuxWeightDevice": {"Major", "Minor"},
    "grpc.LinuxThrottleDevice": {"Major", "Minor"},
}


def _json_name(wire_name: str) -> str:
    return _JSON_NAMES.get(wire_name, wire_name[:1].lower() + wire_name[1:])


def _is_map(fd: Any) -> bool:  # a FieldDescriptor (python or upb)
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _fill(msg: Message, data: Any, path: str) -> None:
    desc = msg.DESCRIPTOR
    if not isinstance(data, Mapping):
        raise ValueError(f"OCI spec {path or '<root>'}: expected an object, got {data!r}")
    skipped = _SKIPPED.get(desc.full_name, set())
    for fd in desc.fields:
        key = _json_name(fd.name)
        value = data.get(key)
        if fd.name in skipped or value is None:
            continue
        where = f"{path}.{key}" if path else key
        try:
            if _is_map(fd):
                if not isinstance(value, Mapping):
                    raise TypeError(f"expected an object, got {value!r}")
                getattr(msg, fd.name).update(value)
            elif fd.is_repeated:
                if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
                    raise TypeError(f"expected a list, got {value!r}")
                target = getattr(msg, fd.name)
                if fd.message_type is None:
                    target.extend(value)
                else:
                    for i, item in enumerate(value):
                        _fill(target.add(), item, f"{where}[{i}]")
            elif fd.message_type is not None:
                sub = getattr(msg, fd.name)
                sub.SetInParent()
                _fill(sub, value, where)
            else:
                if isinstance(value, bool) != (fd.type == FieldDescriptor.TYPE_BOOL):
                    raise TypeError(f"{value!r} has the wrong type")
                setattr(msg, fd.name, value)
        except (TypeError, ValueError) as exc:
            if str(exc).startswith("OCI spec "):
                raise
            raise ValueError(f"OCI spec {where}: {exc}") from exc


WIRE_LIMIT = 4 * 1024 * 1024
"""gRPC's default limit on a received message, which the agent keeps: a CreateContainer
request larger than this never reaches it."""


def oci_spec_to_proto(spec: Mapping[str, Any]) -> Any:
    """A runtime-spec config.json dict -> m.oci.Spec (ValueError names the bad field)."""
    msg = m.oci.Spec()
    _fill(msg, spec, "")
    return msg


def _dump(msg: Message) -> dict[str, Any]:
    desc = msg.DESCRIPTOR
    out: dict[str, Any] = {}
    present = {fd.name for fd, _ in msg.ListFields()} | _ALWAYS.get(desc.full_name, set())
    skipped = _SKIPPED.get(desc.full_name, set())
    for fd in desc.fields:
        if fd.name not in present or fd.name in skipped:
            continue
        value = getattr(msg, fd.name)
        if _is_map(fd):
            out[_json_name(fd.name)] = dict(value)
        elif fd.is_repeated:
            out[_json_name(fd.name)] = (
                list(value) if fd.message_type is None else [_dump(v) for v in value]
            )
        elif fd.message_type is not None:
            out[_json_name(fd.name)] = _dump(value)
        else:
            out[_json_name(fd.name)] = value
    return out


def oci_spec_from_proto(spec: Any) -> dict[str, Any]:
    """m.oci.Spec -> runtime-spec dict; zero scalars and empty lists are omitted (proto3
    cannot tell them from unset), except where zero means something (``_ALWAYS``)."""
    return _dump(spec)

