"""Block devices: rootfs storages, volume storages and container devices per driver."""

import pytest

from sandbox_fsm.guestspec.blockdev import (
    BlockDevice,
    block_volume_storage,
    container_device,
    container_devices,
    rootfs_storage,
)
from sandbox_fsm.guestspec.errors import GuestSpecError

DRIVE = BlockDevice(id="drive-1", virt_path="/dev/vdb", pci_path="02/01", scsi_addr="0:0",
                    devno="0.0.0005", nvdimm_id="1", fstype="ext4")
ROOT = "/run/kata-containers/shared/containers/c1"


@pytest.mark.parametrize(
    ("driver", "agent_type", "source"),
    [
        ("virtio-mmio", "mmioblk", "/dev/vdb"),
        ("virtio-blk-ccw", "blk-ccw", "0.0.0005"),
        ("virtio-blk", "blk", "02/01"),
        ("virtio-scsi", "scsi", "0:0"),
        ("nvdimm", "nvdimm", "/dev/pmem1"),
    ],
)
def test_rootfs_storage_per_driver(driver, agent_type, source):
    s = rootfs_storage(driver, DRIVE, ROOT)
    assert (s.driver, s.source, s.fstype, s.mount_point) == (agent_type, source, "ext4", ROOT)
    assert list(s.options) == []


def test_virtio_blk_without_pci_path_uses_the_virt_path():
    drive = BlockDevice(id="d", virt_path="/dev/vdc", fstype="ext4")
    assert rootfs_storage("virtio-blk", drive, ROOT).source == "/dev/vdc"


def test_xfs_rootfs_gets_nouuid():
    drive = BlockDevice(id="d", scsi_addr="0:1", fstype="xfs")
    assert list(rootfs_storage("virtio-scsi", drive, ROOT).options) == ["nouuid"]


def test_unknown_driver_names_the_device_and_valid_drivers():
    with pytest.raises(GuestSpecError, match="'ide'.*'drive-1'.*virtio-scsi"):
        rootfs_storage("ide", DRIVE, ROOT)
    with pytest.raises(GuestSpecError, match="unknown block device driver"):
        block_volume_storage("ide", DRIVE, "/data")
    with pytest.raises(GuestSpecError, match="unknown block device driver"):
        container_device("ide", DRIVE, "/dev/xvda")


@pytest.mark.parametrize(("driver", "drive", "mount", "expected"), [
    # the seed's TestHandleDeviceBlockVolume vectors (kata_agent_test.go)
    ("virtio-blk-ccw", BlockDevice(id="d", devno="0.0.0005"), {"type": "bind", "options": ["ro"]},
     ("blk-ccw", "0.0.0005", "bind", ["ro"])),
    ("virtio-blk", BlockDevice(id="d", pci_path="02/01", virt_path="/dev/vdb"), {},
     ("blk", "02/01", "", [])),
    ("virtio-blk", BlockDevice(id="d", virt_path="/dev/vdb"), None, ("blk", "/dev/vdb", "", [])),
    ("virtio-mmio", BlockDevice(id="d", virt_path="/dev/vdb"), None,
     ("mmioblk", "/dev/vdb", "", [])),
    ("virtio-scsi", BlockDevice(id="d", scsi_addr="0:0"), None, ("scsi", "0:0", "", [])),
    # a drive's own fstype is the seed's only for pmem; the mount's type and options win
    ("virtio-scsi", BlockDevice(id="d", scsi_addr="0:0", fstype="ext4"),
     {"type": "bind", "options": ["rbind", "ro"]}, ("scsi", "0:0", "bind", ["rbind", "ro"])),
    ("virtio-scsi", BlockDevice(id="p", nvdimm_id="2", pmem=True), {"type": "ext4"},
     ("nvdimm", "/dev/pmem2", "ext4", ["dax"])),
])
def test_block_volume_takes_type_and_options_from_its_mount_as_the_seed(driver, drive, mount,
                                                                        expected):
    s = block_volume_storage(driver, drive, "/data", mount)
    assert (s.driver, s.source, s.fstype, list(s.options)) == expected
    assert s.mount_point == "/data"


def test_pmem_volume_mounts_with_dax_whatever_the_driver():
    pmem = BlockDevice(id="p", nvdimm_id="3", fstype="xfs", pmem=True)
    s = block_volume_storage("virtio-scsi", pmem, "/pmem")
    assert (s.driver, s.source, s.fstype, list(s.options)) == ("nvdimm", "/dev/pmem3", "xfs",
                                                               ["dax"])


def test_vhost_user_volume_is_a_blk_bind():
    vhost = BlockDevice(id="v", pci_path="03/00", vhost_user=True)
    s = block_volume_storage("virtio-scsi", vhost, "/fast")
    assert (s.driver, s.source, s.fstype, list(s.options)) == ("blk", "03/00", "bind", ["bind"])


@pytest.mark.parametrize(
    ("driver", "fields"),
    [
        ("virtio-mmio", ("mmioblk", "/dev/vdb", "/dev/vdb")),
        ("virtio-blk-ccw", ("blk-ccw", "0.0.0005", "")),
        ("virtio-blk", ("blk", "02/01", "/dev/vdb")),
        ("virtio-scsi", ("scsi", "0:0", "")),
        ("nvdimm", ("nvdimm", "", "/dev/pmem1")),
    ],
)
def test_container_device_per_driver(driver, fields):
    d = container_device(driver, DRIVE, "/dev/xvda")
    assert (d.type, d.id, d.vm_path) == fields
    assert d.container_path == "/dev/xvda"


def test_device_list_skips_pmem_and_includes_vhost_user():
    pmem = BlockDevice(id="p", nvdimm_id="0", pmem=True)
    vhost = BlockDevice(id="v", pci_path="04/00", vhost_user=True)
    devices = container_devices("virtio-scsi", [(DRIVE, "/dev/a"), (pmem, "/pmem"),
                                                (vhost, "/dev/b")])
    assert [(d.type, d.id, d.container_path) for d in devices] == [
        ("scsi", "0:0", "/dev/a"), ("blk", "04/00", "/dev/b")]


def test_guest_root_paths():
    from sandbox_fsm.guestspec import container_root_parent, container_root_path

    assert container_root_parent("c1") == ROOT
    assert container_root_path("c1") == ROOT + "/rootfs"
    assert container_root_path("c1", "root") == ROOT + "/root"


def test_a_drive_rootfs_is_refused_when_block_devices_are_disabled():
    with pytest.raises(GuestSpecError, match="disable_block_device_use"):
        rootfs_storage("virtio-scsi", DRIVE, ROOT, disabled=True)
