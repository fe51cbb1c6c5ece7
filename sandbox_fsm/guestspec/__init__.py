"""Pure rules of the seed (Kata v1 `kata_agent.go`): what the guest is asked to mount and run.

Every function here takes plain values (the OCI config.json as a dict, config dataclasses,
block device descriptions) and returns new values or agent wire messages; none touches the
host or mutates its inputs, so the lifecycle engine can record a rule's output as the
intent of a step before acting on it.
"""

from sandbox_fsm.guestspec.agent import (
    AgentSocketDevice,
    SharedFsDevice,
    TraceSettings,
    agent_kernel_params,
    agent_socket_kind,
    hypervisor_devices,
    trace_settings,
)
from sandbox_fsm.guestspec.blockdev import (
    BlockDevice,
    block_volume_storage,
    container_device,
    container_devices,
    rootfs_storage,
)
from sandbox_fsm.guestspec.constrain import agent_pidns, constrain_spec, is_systemd_cgroup
from sandbox_fsm.guestspec.errors import GuestSpecError, UnsupportedOnHost
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
from sandbox_fsm.guestspec.paths import container_root_parent, container_root_path
from sandbox_fsm.guestspec.sandbox import (
    dns_lines,
    kernel_modules,
    sandbox_shm_storage,
    sandbox_storages,
    shared_volume_storage,
)

__all__ = [
    "AgentSocketDevice",
    "BlockDevice",
    "GuestSpecError",
    "SharedFsDevice",
    "SharedMount",
    "TraceSettings",
    "UnsupportedOnHost",
    "agent_kernel_params",
    "agent_pidns",
    "agent_socket_kind",
    "block_volume_storage",
    "constrain_spec",
    "container_device",
    "container_devices",
    "container_root_parent",
    "container_root_path",
    "dns_lines",
    "ephemeral_storages",
    "handle_shm",
    "hugepage_storages",
    "hypervisor_devices",
    "is_systemd_cgroup",
    "kernel_modules",
    "local_storages",
    "parse_size",
    "relocate_block_volumes",
    "remove_ignored_mounts",
    "replace_mount_sources",
    "rootfs_storage",
    "sandbox_shm_storage",
    "sandbox_storages",
    "shared_mounts",
    "shared_volume_storage",
    "trace_settings",
]
