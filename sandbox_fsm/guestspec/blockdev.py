"""Block devices: how a configured drive reaches the guest as a rootfs, a volume or a device.

A block device is a configuration entry (where the hypervisor put it), not a host device.
Which address the agent needs depends on the sandbox's block device driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_io import messages as m
from sandbox_fsm.config import BLOCK_DEVICE_DRIVERS
from sandbox_fsm.guestspec.errors import GuestSpecError

AGENT_TYPES = {
    "virtio-mmio": "mmioblk",
    "virtio-blk-ccw": "blk-ccw",
    "virtio-blk": "blk",
    "virtio-scsi": "scsi",
    "nvdimm": "nvdimm",
}


@dataclass(frozen=True)
class BlockDevice:
    """A drive attached to the sandbox: its guest addresses and its filesystem."""

    id: str
    virt_path: str = ""
    pci_path: str = ""
    scsi_addr: str = ""
    devno: str = ""
    nvdimm_id: str = ""
    fstype: str = ""
    pmem: bool = False
    vhost_user: bool = False
    image: str = ""          # a host image file the runtime attaches itself (loop device)
    read_only: bool = False

    @property
    def pmem_path(self) -> str:
        return f"/dev/pmem{self.nvdimm_id}"


def _address(driver: str, dev: BlockDevice) -> tuple[str, str]:
    """(agent driver type, source address) of a drive under a block device driver."""
    if driver not in AGENT_TYPES:
        raise GuestSpecError(
            f"unknown block device driver {driver!r} for device {dev.id!r}; valid: "
            + ", ".join(BLOCK_DEVICE_DRIVERS)
        )
    source = {
        "virtio-mmio": dev.virt_path,
        "virtio-blk-ccw": dev.devno,
        "virtio-blk": dev.pci_path or dev.virt_path,
        "virtio-scsi": dev.scsi_addr,
        "nvdimm": dev.pmem_path,
    }[driver]
    return AGENT_TYPES[driver], source


def rootfs_storage(driver: str, dev: BlockDevice, mount_point: str, *,
                   disabled: bool = False) -> m.agent.Storage:
    """The Storage that mounts a block-device rootfs at `mount_point` in the guest;
    refused when block devices are disabled for rootfs (`disable_block_device_use`)."""
    if disabled:
        raise GuestSpecError(f"rootfs on drive {dev.id!r}: "
                             "[hypervisor] disable_block_device_use is true")
    agent_type, source = _address(driver, dev)
    return m.agent.Storage(
        driver=agent_type,
        source=source,
        fstype=dev.fstype,
        mount_point=mount_point,
        options=[*(["nouuid"] if dev.fstype == "xfs" else []), *(["ro"] if dev.read_only else [])],
    )


def block_volume_storage(driver: str, dev: BlockDevice, destination: str,
                         mount: Mapping[str, Any] | None = None) -> m.agent.Storage:
    """The Storage for a volume backed by a drive (the seed's handleDeviceBlockVolume).

    pmem mounts its filesystem with dax; a vhost-user drive is a plain bind. Any other
    drive is a raw block volume: its device node is bound in with the OCI mount's own
    type and options (so a `ro` mount stays read-only); as in the seed, such a drive's
    fstype is not used, and a pmem drive without one takes the mount's type too.
    """
    if dev.vhost_user:
        return m.agent.Storage(driver="blk", source=dev.pci_path, fstype="bind",
                               options=["bind"], mount_point=destination)
    if dev.pmem:
        agent_type, source, fstype, options = "nvdimm", dev.pmem_path, dev.fstype, ["dax"]
    else:
        (agent_type, source), fstype, options = _address(driver, dev), "", []
    mount = mount or {}
    return m.agent.Storage(
        driver=agent_type,
        source=source,
        fstype=fstype or str(mount.get("type") or ""),
        options=options or [str(o) for o in mount.get("options") or ()],
        mount_point=destination,
    )


def container_device(driver: str, dev: BlockDevice, container_path: str) -> m.agent.Device | None:
    """The Device for a drive passed with --device; pmem volumes stay invisible (None)."""
    if dev.pmem:
        return None
    if dev.vhost_user:
        return m.agent.Device(type="blk", id=dev.pci_path, container_path=container_path)
    agent_type, _ = _address(driver, dev)
    device = m.agent.Device(type=agent_type, container_path=container_path)
    if driver == "virtio-mmio":
        device.id = device.vm_path = dev.virt_path
    elif driver == "virtio-blk-ccw":
        device.id = dev.devno
    elif driver == "virtio-blk":
        device.id, device.vm_path = dev.pci_path, dev.virt_path
    elif driver == "virtio-scsi":
        device.id = dev.scsi_addr
    else:
        device.vm_path = dev.pmem_path
    return device


def container_devices(
    driver: str, devices: list[tuple[BlockDevice, str]]
) -> list[m.agent.Device]:
    """Devices for (drive, container path) pairs: --device drives, then block volumes."""
    found = (container_device(driver, dev, path) for dev, path in devices)
    return [d for d in found if d is not None]
