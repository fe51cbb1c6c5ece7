"""The domain: sandbox and container lifecycles, saga steps, host resources, recovery, audit.

    from sandbox_fsm import Runtime, RuntimeConfig, SandboxConfig, ContainerConfig

Names are imported on first use (PEP 562), so `import sandbox_fsm.x` costs only x: the
`sbx` read verbs never load the agent client, gRPC or the operations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOME = {
    "ConfigError": "config", "RuntimeConfig": "config", "load_config": "config",
    "Conflict": "errors", "GuestError": "errors", "IllegalTransition": "errors",
    "InvalidRequest": "errors", "NotFound": "errors", "OperationFailed": "errors",
    "SandboxError": "errors",
    "Projector": "projection", "project": "projection", "RecoveryReport": "recovery",
    "Runtime": "runtime", "ContainerConfig": "spec", "Mount": "spec", "SandboxConfig": "spec",
    "ContainerState": "state", "SandboxState": "state",
}
__all__ = [
    "ConfigError", "Conflict", "ContainerConfig", "ContainerState", "GuestError",
    "IllegalTransition",
    "InvalidRequest", "Mount", "NotFound", "OperationFailed", "Projector", "RecoveryReport",
    "Runtime", "RuntimeConfig", "SandboxConfig", "SandboxError", "SandboxState", "load_config",
    "project", "steps",
]

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name == "steps":
        return importlib.import_module(".operations", __name__).steps
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value
