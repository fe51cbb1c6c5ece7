"""Sandbox start: DNS, shared volume, sandbox shm and the CreateSandbox storages.

Kernel modules are converted by `agent_io.convert.kernel_modules`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent_io import messages as m
from agent_io.convert import kernel_modules
from sandbox_fsm.config import HypervisorConfig
from sandbox_fsm.guestspec.errors import GuestSpecError
from sandbox_fsm.guestspec.paths import (
    EPHEMERAL_TYPE,
    GUEST_DNS_FILE,
    GUEST_SHARED_DIR,
    GUEST_SHM_DIR,
    SHARED_MOUNT_TAG,
)

__all__ = [
    "dns_lines",
    "kernel_modules",
    "sandbox_shm_storage",
    "sandbox_storages",
    "shared_volume_storage",
]

SHM_OPTIONS = ("noexec", "nosuid", "nodev", "mode=1777")
NINE_P_OPTIONS = ("trans=virtio,version=9p2000.L,cache=mmap", "nodev")


def dns_lines(spec: Mapping[str, Any]) -> list[str]:
    """Lines of the host file the sandbox spec mounts at /etc/resolv.conf ([] if none)."""
    for mount in spec.get("mounts") or ():
        if mount.get("destination") == GUEST_DNS_FILE:
            source = mount.get("source", "")
            try:
                return Path(source).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise GuestSpecError(
                    f"cannot read the DNS file {source!r} mounted at {GUEST_DNS_FILE}: "
                    f"{exc.strerror}"
                ) from exc
    return []


def shared_volume_storage(
    shared_fs: str, *, msize_9p: int, virtio_fs_cache: str, virtio_fs_cache_size: int
) -> m.agent.Storage:
    """The shared directory every container bundle reaches the guest through.

    Options are built fresh on each call: the seed appends to package-level slices, so
    each new sandbox in one runtime process inherited the previous sandboxes' options.
    """
    if shared_fs == "virtio-fs":
        dax = virtio_fs_cache != "none" and virtio_fs_cache_size != 0
        return m.agent.Storage(
            driver="virtio-fs",
            source=SHARED_MOUNT_TAG,
            mount_point=GUEST_SHARED_DIR,
            fstype="virtiofs",
            options=["dax"] if dax else [],
        )
    if shared_fs == "9p":
        return m.agent.Storage(
            driver="9p",
            source=SHARED_MOUNT_TAG,
            mount_point=GUEST_SHARED_DIR,
            fstype="9p",
            options=[*NINE_P_OPTIONS, f"msize={msize_9p}"],
        )
    raise GuestSpecError(f"unknown shared_fs {shared_fs!r}; valid: '9p', 'virtio-fs'")


def sandbox_shm_storage(shm_size: int) -> m.agent.Storage:
    """The sandbox-wide /dev/shm tmpfs that containers' /dev/shm bind to."""
    return m.agent.Storage(
        driver=EPHEMERAL_TYPE,
        source="shm",
        mount_point=GUEST_SHM_DIR,
        fstype="tmpfs",
        options=[*SHM_OPTIONS, f"size={shm_size}"],
    )


def sandbox_storages(hypervisor: HypervisorConfig) -> list[m.agent.Storage]:
    """Storages of CreateSandbox: the shared volume (if fs sharing works) and the shm."""
    storages = []
    if hypervisor.supports_fs_sharing:
        storages.append(
            shared_volume_storage(
                hypervisor.shared_fs,
                msize_9p=hypervisor.msize_9p,
                virtio_fs_cache=hypervisor.virtio_fs_cache,
                virtio_fs_cache_size=hypervisor.virtio_fs_cache_size,
            )
        )
    if hypervisor.shm_size > 0:
        storages.append(sandbox_shm_storage(hypervisor.shm_size))
    return storages
