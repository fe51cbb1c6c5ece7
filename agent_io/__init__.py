"""Everything on the wire: the agent client, the reference guest agent, fault plans."""

from agent_io.client import AgentClient
from agent_io.errors import (
    AgentDead,
    AgentError,
    AgentRpcError,
    AgentTimeout,
    AgentUnavailable,
)

__all__ = [
    "AgentClient",
    "AgentDead",
    "AgentError",
    "AgentRpcError",
    "AgentTimeout",
    "AgentUnavailable",
]
