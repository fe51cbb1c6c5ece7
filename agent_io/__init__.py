"""Everything on the wire: the agent client, the reference guest agent, fault plans.

Names load on first use (PEP 562): `from agent_io import AgentError` costs the errors
module alone, not gRPC and the generated messages the client needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_io.client import AgentClient
    from agent_io.errors import (
        AgentDead,
        AgentError,
        AgentRpcError,
        AgentTimeout,
        AgentUnavailable,
    )

_HOME = {"AgentClient": "client", "AgentDead": "errors", "AgentError": "errors",
         "AgentRpcError": "errors", "AgentTimeout": "errors", "AgentUnavailable": "errors"}

__all__ = [
    "AgentClient",
    "AgentDead",
    "AgentError",
    "AgentRpcError",
    "AgentTimeout",
    "AgentUnavailable",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"agent_io.{_HOME[name]}"), name)
    globals()[name] = value
    return value
