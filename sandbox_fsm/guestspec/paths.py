"""Guest-side paths and names the seed runtime and the guest agent agree on."""

import posixpath

GUEST_SHARED_DIR = "/run/kata-containers/shared/containers/"
GUEST_SANDBOX_DIR = "/run/kata-containers/sandbox/"
GUEST_SHM_DIR = posixpath.join(GUEST_SANDBOX_DIR, "shm")
EPHEMERAL_PATH = posixpath.join(GUEST_SANDBOX_DIR, "ephemeral")
SHARED_MOUNT_TAG = "kataShared"
GUEST_DNS_FILE = "/etc/resolv.conf"
DEFAULT_ROOTFS_SUFFIX = "rootfs"

EPHEMERAL_TYPE = "ephemeral"
LOCAL_TYPE = "local"


def container_root_parent(container_id: str) -> str:
    """Where a container's bundle lives in the guest (the block rootfs mount point)."""
    return posixpath.join(GUEST_SHARED_DIR, container_id)


def container_root_path(container_id: str, rootfs_suffix: str = DEFAULT_ROOTFS_SUFFIX) -> str:
    """The absolute guest path given to the agent as the container's `root.path`."""
    return posixpath.join(container_root_parent(container_id), rootfs_suffix)
