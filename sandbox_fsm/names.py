"""The vocabulary: lifecycle states, triggers, operation names, event types, resource kinds.

A leaf module (it imports nothing of ours) so every layer names things the same way. The
values are what the log stores, so they never change; docs/events.md is their catalogue
(a test checks that every event type here is documented there).

`State`, `Trigger` and `Kind` are `StrEnum`s: a member compares equal to the string the
log holds, so folded data (plain strings) and code (members) meet without conversion.
Operation names and event types are plain string constants: they go into every append,
and the event store's encoder keeps a fast path for exact `str` types.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class State(StrEnum):
    """Every state the log can put a sandbox or a container in."""

    NEW = "new"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DELETED = "deleted"
    FAILED = "failed"   # a compensation (or a teardown) could not finish


# A container in one of these may still have processes in the guest.
ACTIVE: Final = frozenset({State.CREATED, State.RUNNING, State.PAUSED})
# A container whose init process runs (or is frozen).
STARTED: Final = frozenset({State.RUNNING, State.PAUSED})
# A sandbox id that is free for a new create (never created, or deleted).
ABSENT: Final = frozenset({State.NEW, State.DELETED})


class Trigger(StrEnum):
    """What a caller (or the saga, or recovery) asks the lifecycle machine for."""

    CREATE = "create"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    DELETE = "delete"
    FAIL = "fail"      # the saga: a compensation or a teardown could not finish
    LOSE = "lost"      # recovery: the guest or proxy died under a live sandbox


class Kind(StrEnum):
    """Resource kinds in a sandbox's ledger."""

    MOUNT = "mount"
    DIR = "dir"
    PROCESS = "process"
    DEVICE = "device"
    SHIM = "shim"         # a per-process shim (operations/shim.py)


class Op:
    """Operation names, as `OperationStarted.operation` records them."""

    CREATE_SANDBOX: Final = "create_sandbox"
    START_SANDBOX: Final = "start_sandbox"
    STOP_SANDBOX: Final = "stop_sandbox"
    DELETE_SANDBOX: Final = "delete_sandbox"
    RELEASE_LOST_SANDBOX: Final = "release_lost_sandbox"
    RELEASE_DELETED_SANDBOX: Final = "release_deleted_sandbox"
    PAUSE_SANDBOX: Final = "pause_sandbox"
    RESUME_SANDBOX: Final = "resume_sandbox"
    CREATE_CONTAINER: Final = "create_container"
    START_CONTAINER: Final = "start_container"
    STOP_CONTAINER: Final = "stop_container"
    DELETE_CONTAINER: Final = "delete_container"
    PAUSE_CONTAINER: Final = "pause_container"
    RESUME_CONTAINER: Final = "resume_container"
    UPDATE_CONTAINER: Final = "update_container"
    EXEC: Final = "exec"
    KILL: Final = "kill"
    RESIZE_TTY: Final = "resize_tty"
    CLOSE_STDIN: Final = "close_stdin"
    ONLINE_CPU_MEM: Final = "online_cpu_mem"
    HOTPLUG_MEMORY: Final = "hotplug_memory"
    RESEED_RNG: Final = "reseed_rng"
    SET_GUEST_TIME: Final = "set_guest_time"
    COPY_FILE: Final = "copy_file"
    # guest reads: operations in older logs only (reads are plain calls now)
    STATS_CONTAINER: Final = "stats_container"
    LIST_PROCESSES: Final = "list_processes"
    GUEST_DETAILS: Final = "guest_details"
    LIST_INTERFACES: Final = "list_interfaces"
    LIST_ROUTES: Final = "list_routes"
    START_SHIM: Final = "start_shim"
    STOP_SHIMS: Final = "stop_shims"
    RELEASE_LOST_SHIM: Final = "release_lost_shim"


class Ev:
    """Event types: the saga protocol, facts, and each step's outcome."""

    # the saga protocol
    OPERATION_STARTED: Final = "OperationStarted"
    STEP_STARTED: Final = "StepStarted"
    STEP_FAILED: Final = "StepFailed"
    COMPENSATION_STARTED: Final = "CompensationStarted"
    STEP_COMPENSATED: Final = "StepCompensated"
    COMPENSATION_FAILED: Final = "CompensationFailed"
    OPERATION_ABORTED: Final = "OperationAborted"
    OPERATION_COMPLETED: Final = "OperationCompleted"
    # facts recorded between operations (and by recovery)
    PROCESS_EXITED: Final = "ProcessExited"
    CONTAINER_OOM_KILLED: Final = "ContainerOOMKilled"
    SANDBOX_LOST: Final = "SandboxLost"
    RESOURCES_RELEASED: Final = "ResourcesReleased"
    # sandbox steps
    SHARED_PATH_CREATED: Final = "SharedPathCreated"
    SHARED_DIR_MOUNTED: Final = "SharedDirMounted"
    VM_STARTED: Final = "VMStarted"
    PROXY_STARTED: Final = "ProxyStarted"
    AGENT_CHECKED: Final = "AgentChecked"
    GUEST_SANDBOX_CREATED: Final = "GuestSandboxCreated"
    NETWORK_CONFIGURED: Final = "NetworkConfigured"
    TRACING_STARTED: Final = "TracingStarted"
    TRACING_STOPPED: Final = "TracingStopped"
    GUEST_SANDBOX_DESTROYED: Final = "GuestSandboxDestroyed"
    PROXY_STOPPED: Final = "ProxyStopped"
    VM_STOPPED: Final = "VMStopped"
    CONTAINER_MOUNTS_UNMOUNTED: Final = "ContainerMountsUnmounted"
    SHARED_DIR_UNMOUNTED: Final = "SharedDirUnmounted"
    SANDBOX_DIR_REMOVED: Final = "SandboxDirRemoved"
    NOTHING_HELD: Final = "NothingHeld"
    DEVICES_DETACHED: Final = "DevicesDetached"
    # container steps
    ROOTFS_MOUNTED: Final = "RootfsMounted"
    VOLUME_MOUNTED: Final = "VolumeMounted"
    DEVICE_ATTACHED: Final = "DeviceAttached"
    CONTAINER_CREATED: Final = "ContainerCreated"
    CONTAINER_STARTED: Final = "ContainerStarted"
    CONTAINER_STOPPED: Final = "ContainerStopped"
    CONTAINER_REMOVED: Final = "ContainerRemoved"
    PROCESS_STARTED: Final = "ProcessStarted"
    PROCESS_SIGNALLED: Final = "ProcessSignalled"
    # running sandboxes and containers
    SANDBOX_PAUSED: Final = "SandboxPaused"
    SANDBOX_RESUMED: Final = "SandboxResumed"
    CONTAINER_PAUSED: Final = "ContainerPaused"
    CONTAINER_RESUMED: Final = "ContainerResumed"
    CONTAINER_UPDATED: Final = "ContainerUpdated"
    TTY_RESIZED: Final = "TtyResized"
    STDIN_CLOSED: Final = "StdinClosed"
    CPU_MEM_ONLINED: Final = "CPUMemOnlined"
    MEMORY_HOTPLUGGED: Final = "MemoryHotplugged"
    RNG_RESEEDED: Final = "RNGReseeded"
    GUEST_TIME_SET: Final = "GuestTimeSet"
    FILE_COPIED: Final = "FileCopied"
    # guest reads: in older logs only (reads are not journalled now)
    STATS_READ: Final = "StatsRead"
    PROCESSES_LISTED: Final = "ProcessesListed"
    GUEST_DETAILS_READ: Final = "GuestDetailsRead"
    INTERFACES_LISTED: Final = "InterfacesListed"
    ROUTES_LISTED: Final = "RoutesListed"
    # per-process shims
    SHIM_STARTED: Final = "ShimStarted"
    SHIMS_STOPPED: Final = "ShimsStopped"


def event_types() -> frozenset[str]:
    """Every event type a log may hold: what the code appends, and the reads of older logs."""
    return frozenset(v for k, v in vars(Ev).items() if k.isupper() and isinstance(v, str))
