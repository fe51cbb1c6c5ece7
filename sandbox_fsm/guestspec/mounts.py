"""Container mounts: which OCI mounts the guest must back itself, and where they now point.

Each rule takes the OCI `mounts` list and returns a new list (the input is never
changed) plus the Storages the agent must set up before the container starts.
"""

from __future__ import annotations

import copy
import posixpath
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_io import messages as m
from sandbox_fsm.guestspec.errors import GuestSpecError
from sandbox_fsm.guestspec.paths import (
    DEFAULT_ROOTFS_SUFFIX,
    EPHEMERAL_PATH,
    EPHEMERAL_TYPE,
    GUEST_SHARED_DIR,
    GUEST_SHM_DIR,
    LOCAL_TYPE,
)
from sandbox_fsm.guestspec.sandbox import SHM_OPTIONS

Mount = dict[str, Any]
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
LOCAL_DIR_OPTIONS = ("mode=0777",)
SYSTEM_MOUNT_PREFIXES = ("/proc", "/sys")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$", re.IGNORECASE)


def _copy(mounts: Sequence[Mapping[str, Any]]) -> list[Mount]:
    return [copy.deepcopy(dict(mnt)) for mnt in mounts]


def handle_shm(mounts: Sequence[Mapping[str, Any]], sandbox_shm_size: int) -> list[Mount]:
    """/dev/shm binds the sandbox shm when there is one, else gets its own 64 MiB tmpfs.

    An ephemeral /dev/shm is left alone: the ephemeral rule backs it.
    """
    out = _copy(mounts)
    for mnt in out:
        if mnt.get("destination") != "/dev/shm" or mnt.get("type") == EPHEMERAL_TYPE:
            continue
        if sandbox_shm_size > 0:
            mnt.update(type="bind", source=GUEST_SHM_DIR, options=["rbind"])
        else:
            options = [*SHM_OPTIONS, f"size={DEFAULT_SHM_SIZE}"]
            mnt.update(type="tmpfs", source="shm", options=options)
    return out


def ephemeral_storages(
    mounts: Sequence[Mapping[str, Any]],
) -> tuple[list[Mount], list[m.agent.Storage]]:
    """Ephemeral volumes become guest tmpfs under the sandbox's ephemeral dir, bound in."""
    out, storages = _copy(mounts), []
    for mnt in out:
        if mnt.get("type") != EPHEMERAL_TYPE:
            continue
        guest = posixpath.join(EPHEMERAL_PATH, posixpath.basename(mnt.get("source", "")))
        mnt.update(type="bind", source=guest)
        storages.append(
            m.agent.Storage(driver=EPHEMERAL_TYPE, source="tmpfs", fstype="tmpfs",
                            mount_point=guest)
        )
    return out, storages


def parse_size(text: str) -> int:
    """Bytes in a size like `2M`, `2MB`, `1GiB`, `512k` (binary multiples, as the seed)."""
    found = _SIZE.match(text)
    if not found:
        raise GuestSpecError(f"invalid size {text!r}; expected a number with an optional "
                             "unit K, M, G, T or P (e.g. 2M, 1GB)")
    number, unit = found.group(1), found.group(2).lower()
    return int(float(number) * 1024 ** (" kmgtp".index(unit) if unit else 0))


def hugepage_storages(
    mounts: Sequence[Mapping[str, Any]], hugepage_limits: Sequence[Mapping[str, Any]]
) -> tuple[list[Mount], list[m.agent.Storage]]:
    """hugetlbfs mounts become guest hugetlbfs sized by the OCI hugepage limit of their size.

    The page size comes from the mount's `pagesize=` option; the seed reads it from the
    host mount table, here it is taken from the OCI mount so the rule stays pure.
    """
    limits = {}
    for limit in hugepage_limits:
        if limit.get("limit"):
            limits[parse_size(limit.get("pageSize", ""))] = int(limit["limit"])
    out, storages = _copy(mounts), []
    for mnt in out:
        if mnt.get("type") != "hugetlbfs":
            continue
        where = f"hugepage mount {mnt.get('destination')!r}"
        sizes = [o.split("=", 1)[1] for o in _options(mnt) if o.startswith("pagesize=")]
        if not sizes:
            raise GuestSpecError(f"{where}: no pagesize option in {mnt.get('options')}")
        page_size = parse_size(sizes[-1])
        if page_size not in limits:
            raise GuestSpecError(f"{where}: no hugepage limit for page size {sizes[-1]} in "
                                 f"linux.resources.hugepageLimits")
        guest = posixpath.join(EPHEMERAL_PATH, posixpath.basename(mnt.get("source", "")))
        mnt.update(type="bind", source=guest)
        storages.append(
            m.agent.Storage(
                driver=EPHEMERAL_TYPE,
                source="nodev",
                fstype="hugetlbfs",
                mount_point=guest,
                options=[f"pagesize={page_size},size={limits[page_size]}"],
            )
        )
    return out, storages


def _options(mnt: Mapping[str, Any]) -> list[str]:
    return [o for opt in mnt.get("options") or () for o in opt.split(",")]


def local_storages(
    mounts: Sequence[Mapping[str, Any]],
    sandbox_id: str,
    rootfs_suffix: str = DEFAULT_ROOTFS_SUFFIX,
) -> tuple[list[Mount], list[m.agent.Storage]]:
    """Local volumes become directories in the first container's rootfs (id = sandbox id)."""
    out, storages = _copy(mounts), []
    for mnt in out:
        if mnt.get("type") != LOCAL_TYPE:
            continue
        name = posixpath.basename(mnt.get("source", ""))
        guest = posixpath.join(GUEST_SHARED_DIR, sandbox_id, rootfs_suffix, LOCAL_TYPE, name)
        mnt["source"] = guest
        storages.append(
            m.agent.Storage(
                driver=LOCAL_TYPE,
                source=LOCAL_TYPE,
                fstype=LOCAL_TYPE,
                mount_point=guest,
                options=list(LOCAL_DIR_OPTIONS),
            )
        )
    return out, storages


@dataclass(frozen=True)
class SharedMount:
    """A host bind mount to expose through the shared dir, and its path in the guest."""

    destination: str
    host_source: str
    guest_path: str
    readonly: bool


def is_system_mount(source: str) -> bool:
    """/proc and /sys sources make no sense to share into a VM."""
    return any(source == p or source.startswith(p + "/") for p in SYSTEM_MOUNT_PREFIXES)


def is_host_device(destination: str, is_regular_file: Callable[[str], bool]) -> bool:
    """/dev and device nodes under it stay out of the guest; regular files under /dev pass."""
    if destination == "/dev":
        return True
    return destination.startswith("/dev/") and not is_regular_file(destination)


def shared_mounts(
    container_id: str,
    mounts: Sequence[Mapping[str, Any]],
    *,
    block_destinations: frozenset[str] = frozenset(),
    is_regular_file: Callable[[str], bool],
    token: Callable[[], str] = lambda: secrets.token_hex(8),
) -> list[SharedMount]:
    """Bind mounts to share with the guest, each under a unique name in the shared dir.

    Skipped as the seed does: system sources, non-bind mounts, /dev/shm (guest memory),
    block-device volumes (attached as drives) and host devices.
    """
    shared = []
    for mnt in mounts:
        source, destination = mnt.get("source", ""), mnt.get("destination", "")
        if (
            is_system_mount(source)
            or mnt.get("type") != "bind"
            or destination == "/dev/shm"
            or destination in block_destinations
            or is_host_device(destination, is_regular_file)
        ):
            continue
        name = f"{container_id}-{token()}-{posixpath.basename(destination)}"
        readonly = "ro" in (mnt.get("options") or ())
        shared.append(
            SharedMount(destination, source, posixpath.join(GUEST_SHARED_DIR, name), readonly)
        )
    return shared


def replace_mount_sources(
    mounts: Sequence[Mapping[str, Any]], guest_sources: Mapping[str, str]
) -> list[Mount]:
    """Point mounts at their guest path, keyed by destination."""
    out = _copy(mounts)
    for mnt in out:
        if mnt.get("destination") in guest_sources:
            mnt["source"] = guest_sources[mnt["destination"]]
    return out


def remove_ignored_mounts(
    mounts: Sequence[Mapping[str, Any]], ignored_sources: frozenset[str]
) -> list[Mount]:
    """Drop mounts whose host source the guest will not see (keyed by source, as the seed)."""
    return [mnt for mnt in _copy(mounts) if mnt.get("source") not in ignored_sources]


def relocate_block_volumes(
    mounts: Sequence[Mapping[str, Any]],
    storages: Sequence[m.agent.Storage],
    *,
    token: Callable[[], str] = lambda: secrets.token_hex(16),
) -> tuple[list[Mount], list[m.agent.Storage]]:
    """Mount each block volume at a unique shared-dir path and bind the OCI mount from it.

    A volume whose destination has no OCI mount is an error (the seed's check never fires).
    """
    out, moved = _copy(mounts), []
    for storage in storages:
        target = next((x for x in out if x.get("destination") == storage.mount_point), None)
        if target is None:
            raise GuestSpecError(f"OCI mount not found for block volume {storage.mount_point!r}")
        name = f"{token()}-{posixpath.basename(storage.mount_point)}"
        path = posixpath.join(GUEST_SHARED_DIR, name)
        target["source"] = path
        relocated = m.agent.Storage()
        relocated.CopyFrom(storage)
        relocated.mount_point = path
        moved.append(relocated)
    return out, moved
