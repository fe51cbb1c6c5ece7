"""The domain: sandbox and container lifecycles, saga steps, host resources, recovery, audit.

    from sandbox_fsm import Runtime, RuntimeConfig, SandboxConfig, ContainerConfig
"""

from .config import ConfigError, RuntimeConfig, load_config
from .errors import (
    Conflict,
    GuestError,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    OperationFailed,
    SandboxError,
)
from .operations import steps
from .projection import Projector, project
from .recovery import RecoveryReport
from .runtime import Runtime
from .spec import ContainerConfig, Mount, SandboxConfig
from .state import ContainerState, SandboxState

__all__ = [
    "ConfigError", "Conflict", "ContainerConfig", "ContainerState", "GuestError",
    "IllegalTransition",
    "InvalidRequest", "Mount", "NotFound", "OperationFailed", "Projector", "RecoveryReport",
    "Runtime", "RuntimeConfig", "SandboxConfig", "SandboxError", "SandboxState", "load_config",
    "project", "steps",
]
