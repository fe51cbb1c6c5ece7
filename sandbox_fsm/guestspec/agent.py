"""Agent boot settings: tracing, the agent's kernel parameters, and the hypervisor devices."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox_fsm.config import TRACE_MODES, TRACE_TYPES, AgentConfig
from sandbox_fsm.guestspec.errors import GuestSpecError, UnsupportedOnHost
from sandbox_fsm.guestspec.paths import SHARED_MOUNT_TAG

DEFAULT_TRACE_MODE = "dynamic"
DEFAULT_TRACE_TYPE = "isolated"
SOCKET_KINDS = ("unix", "vsock", "hybrid-vsock")


@dataclass(frozen=True)
class TraceSettings:
    """Resolved tracing: static tracing keeps the VM up at shutdown so traces can be read."""

    enabled: bool
    mode: str
    type: str
    disable_vm_shutdown: bool
    dynamic_tracing: bool


def trace_settings(trace: bool, mode: str = "", type_: str = "") -> TraceSettings:
    """Validate trace mode/type (empty means the default) and derive what they imply."""
    if not trace:
        return TraceSettings(False, mode, type_, False, False)
    mode = mode or DEFAULT_TRACE_MODE
    type_ = type_ or DEFAULT_TRACE_TYPE
    if mode not in TRACE_MODES:
        raise GuestSpecError(f"invalid agent trace mode {mode!r}; valid: {_quoted(TRACE_MODES)}")
    if type_ not in TRACE_TYPES:
        raise GuestSpecError(f"invalid agent trace type {type_!r}; valid: {_quoted(TRACE_TYPES)}")
    return TraceSettings(True, mode, type_, mode == "static", mode == "dynamic")


def agent_kernel_params(agent: AgentConfig) -> list[tuple[str, str]]:
    """(key, value) kernel parameters the seed adds for the agent, in the seed's order."""
    trace = trace_settings(agent.trace, agent.trace_mode, agent.trace_type)
    params = []
    if agent.debug:
        params.append(("agent.log", "debug"))
    if trace.enabled and trace.mode == "static":
        params.append(("agent.trace", trace.type))
    if agent.container_pipe_size > 0:
        params.append(("agent.container_pipe_size", str(agent.container_pipe_size)))
    return params


@dataclass(frozen=True)
class AgentSocketDevice:
    """The channel the agent listens on (a serial port for unix sockets in the seed)."""

    kind: str
    host_path: str


@dataclass(frozen=True)
class SharedFsDevice:
    """The host directory exported to the guest under the shared mount tag."""

    shared_fs: str
    host_path: str
    mount_tag: str = SHARED_MOUNT_TAG


def agent_socket_kind(use_vsock: bool) -> str:
    """The socket kind a configuration asks for."""
    return "vsock" if use_vsock else "unix"


def hypervisor_devices(
    *,
    socket_kind: str,
    socket_path: str,
    share_path: str,
    shared_fs: str,
    supports_fs_sharing: bool,
) -> list[AgentSocketDevice | SharedFsDevice]:
    """Devices the seed adds to the VM: the agent socket, then the shared fs if supported."""
    if socket_kind not in SOCKET_KINDS:
        raise GuestSpecError(f"invalid agent socket kind {socket_kind!r}; valid: "
                             f"{_quoted(SOCKET_KINDS)}")
    if socket_kind != "unix":
        raise UnsupportedOnHost(
            f"agent socket {socket_kind!r} is not supported on this host (processes and "
            f"namespaces have no vsock); set [hypervisor] use_vsock = false"
        )
    devices: list[AgentSocketDevice | SharedFsDevice] = [AgentSocketDevice("unix", socket_path)]
    if supports_fs_sharing:
        devices.append(SharedFsDevice(shared_fs, share_path))
    return devices


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)
