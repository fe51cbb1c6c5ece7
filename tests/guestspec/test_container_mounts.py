"""Container mount rules: shm, ephemeral, hugepages, local, sharing, sources, block volumes."""

import copy
import itertools

import pytest

from agent_io import messages as m
from sandbox_fsm.guestspec.errors import GuestSpecError
from sandbox_fsm.guestspec.mounts import (
    SharedMount,
    ephemeral_storages,
    handle_shm,
    hugepage_storages,
    local_storages,
    parse_size,
    relocate_block_volumes,
    remove_ignored_mounts,
    replace_mount_sources,
    shared_mounts,
)

SHM = {"destination": "/dev/shm", "type": "bind", "source": "/host/shm", "options": ["rw"]}
PROC = {"destination": "/proc", "type": "proc", "source": "proc"}


def test_shm_binds_the_sandbox_shm():
    mounts = [PROC, SHM]
    out = handle_shm(mounts, sandbox_shm_size=1 << 20)
    assert out[1] == {"destination": "/dev/shm", "type": "bind",
                      "source": "/run/kata-containers/sandbox/shm", "options": ["rbind"]}
    assert out[0] == PROC and mounts[1]["source"] == "/host/shm"


def test_shm_without_sandbox_shm_is_a_64mib_tmpfs():
    out = handle_shm([SHM], sandbox_shm_size=0)
    assert out == [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                    "options": ["noexec", "nosuid", "nodev", "mode=1777", "size=67108864"]}]


def test_ephemeral_shm_is_left_to_the_ephemeral_rule():
    eph = {"destination": "/dev/shm", "type": "ephemeral", "source": "/var/lib/k/vol/shm"}
    assert handle_shm([eph], sandbox_shm_size=1024) == [eph]
    out, storages = ephemeral_storages(handle_shm([eph], sandbox_shm_size=1024))
    assert out[0]["type"] == "bind"
    assert out[0]["source"] == "/run/kata-containers/sandbox/ephemeral/shm"
    assert storages[0].mount_point == out[0]["source"]


def test_ephemeral_volumes_become_guest_tmpfs():
    mounts = [PROC, {"destination": "/cache", "type": "ephemeral", "source": "/k/pods/x/cache"}]
    before = copy.deepcopy(mounts)
    out, storages = ephemeral_storages(mounts)
    assert mounts == before
    assert out[1] == {"destination": "/cache", "type": "bind",
                      "source": "/run/kata-containers/sandbox/ephemeral/cache"}
    assert storages == [m.agent.Storage(driver="ephemeral", source="tmpfs", fstype="tmpfs",
                                        mount_point="/run/kata-containers/sandbox/ephemeral/cache")]


@pytest.mark.parametrize(
    ("text", "size"),
    [("2M", 2 << 20), ("2MB", 2 << 20), ("2MiB", 2 << 20), ("1G", 1 << 30), ("1gb", 1 << 30),
     ("64k", 64 << 10), ("4096", 4096)],
)
def test_parse_size_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "two megs", "2X", "-1M"])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(GuestSpecError, match="invalid size"):
        parse_size(text)


LIMITS = [{"pageSize": "2MB", "limit": 4 << 21}, {"pageSize": "1GB", "limit": 2 << 30},
          {"pageSize": "64KB", "limit": 0}]


@pytest.mark.parametrize(
    ("pagesize", "option"),
    [("2M", f"pagesize={2 << 20},size={4 << 21}"), ("1G", f"pagesize={1 << 30},size={2 << 30}")],
)
def test_hugepages_sized_from_the_oci_limits(pagesize, option):
    mnt = {"destination": "/hugepages", "type": "hugetlbfs", "source": "/dev/hugepages-x",
           "options": ["rw", f"pagesize={pagesize}"]}
    out, storages = hugepage_storages([PROC, mnt], LIMITS)
    guest = "/run/kata-containers/sandbox/ephemeral/hugepages-x"
    assert out[1]["type"] == "bind" and out[1]["source"] == guest
    assert storages == [m.agent.Storage(driver="ephemeral", source="nodev", fstype="hugetlbfs",
                                        mount_point=guest, options=[option])]


def test_hugepages_without_pagesize_option_is_an_error():
    mnt = {"destination": "/hp", "type": "hugetlbfs", "source": "/dev/hp", "options": ["rw"]}
    with pytest.raises(GuestSpecError, match="'/hp'.*no pagesize option"):
        hugepage_storages([mnt], LIMITS)


def test_hugepages_without_a_limit_for_the_size_is_an_error():
    mnt = {"destination": "/hp", "type": "hugetlbfs", "source": "/dev/hp",
           "options": ["pagesize=64K"]}
    with pytest.raises(GuestSpecError, match="no hugepage limit for page size 64K"):
        hugepage_storages([mnt], LIMITS)


def test_local_volumes_live_in_the_first_containers_rootfs():
    mounts = [{"destination": "/scratch", "type": "local", "source": "/k/vol/scratch"}]
    out, storages = local_storages(mounts, "sbx1")
    guest = "/run/kata-containers/shared/containers/sbx1/rootfs/local/scratch"
    assert out == [{"destination": "/scratch", "type": "local", "source": guest}]
    assert storages == [m.agent.Storage(driver="local", source="local", fstype="local",
                                        mount_point=guest, options=["mode=0777"])]


def test_shared_mounts_skip_what_the_seed_skips():
    mounts = [
        PROC,
        {"destination": "/sys/fs/cgroup", "type": "bind", "source": "/sys/fs/cgroup"},
        {"destination": "/etc/hosts", "type": "bind", "source": "/h/hosts", "options": ["ro"]},
        SHM,
        {"destination": "/data", "type": "bind", "source": "/dev/sdb"},
        {"destination": "/dev/kvm", "type": "bind", "source": "/dev/kvm"},
        {"destination": "/dev/termination-log", "type": "bind", "source": "/h/log"},
        {"destination": "/dev", "type": "bind", "source": "/dev"},
        {"destination": "/work", "type": "bind", "source": "/h/work"},
        {"destination": "/cg", "type": "cgroup", "source": "cgroup"},
    ]
    tokens = itertools.count()
    shared = shared_mounts("c1", mounts, block_destinations=frozenset({"/data"}),
                           is_regular_file=lambda p: p == "/dev/termination-log",
                           token=lambda: f"t{next(tokens)}")
    base = "/run/kata-containers/shared/containers/"
    assert shared == [
        SharedMount("/etc/hosts", "/h/hosts", base + "c1-t0-hosts", True),
        SharedMount("/dev/termination-log", "/h/log", base + "c1-t1-termination-log", False),
        SharedMount("/work", "/h/work", base + "c1-t2-work", False),
    ]


def test_shared_mount_names_are_unique_by_default():
    mounts = [{"destination": "/a/x", "type": "bind", "source": "/1"},
              {"destination": "/b/x", "type": "bind", "source": "/2"}]
    shared = shared_mounts("c", mounts, is_regular_file=lambda p: False)
    assert len({s.guest_path for s in shared}) == 2


def test_replace_sources_and_remove_ignored():
    mounts = [{"destination": "/etc/hosts", "source": "/h/hosts"},
              {"destination": "/work", "source": "/h/work"}]
    replaced = replace_mount_sources(mounts, {"/work": "/guest/work"})
    assert [x["source"] for x in replaced] == ["/h/hosts", "/guest/work"]
    assert mounts[1]["source"] == "/h/work"
    assert remove_ignored_mounts(replaced, frozenset({"/h/hosts"})) == [replaced[1]]


def test_block_volumes_move_to_a_unique_shared_dir_path():
    mounts = [{"destination": "/data", "type": "bind", "source": "/dev/sdb"}]
    vol = m.agent.Storage(driver="scsi", source="0:0", fstype="bind", options=["bind"],
                          mount_point="/data")
    out, moved = relocate_block_volumes(mounts, [vol], token=lambda: "u1")
    path = "/run/kata-containers/shared/containers/u1-data"
    assert out[0]["source"] == path and moved[0].mount_point == path
    assert vol.mount_point == "/data" and mounts[0]["source"] == "/dev/sdb"
    _, again = relocate_block_volumes(mounts, [vol])
    _, other = relocate_block_volumes(mounts, [vol])
    assert again[0].mount_point != other[0].mount_point


def test_block_volume_without_its_oci_mount_is_an_error():
    vol = m.agent.Storage(driver="scsi", mount_point="/missing")
    with pytest.raises(GuestSpecError, match="OCI mount not found for block volume '/missing'"):
        relocate_block_volumes([{"destination": "/data"}], [vol])
