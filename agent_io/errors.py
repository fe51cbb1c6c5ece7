"""Typed agent failures: callers learn which rpc, which sandbox/container and why.

A raw ``grpc.RpcError`` never leaves :mod:`agent_io.client`; it becomes one of these.
"""

from __future__ import annotations


class AgentError(Exception):
    """Any failure talking to a guest agent."""

    def __init__(
        self,
        why: str,
        *,
        rpc: str | None = None,
        sandbox_id: str | None = None,
        container_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.why = why
        self.rpc = rpc
        self.sandbox_id = sandbox_id
        self.container_id = container_id
        self.code = code
        where = [f"rpc {rpc}" if rpc else "agent"]
        if sandbox_id:
            where.append(f"sandbox {sandbox_id}")
        if container_id:
            where.append(f"container {container_id}")
        super().__init__(f"{', '.join(where)}: {why}")


class AgentUnavailable(AgentError):
    """The agent could not be reached (nothing listening, connection refused or lost)."""


class AgentTimeout(AgentError):
    """The rpc did not finish before its deadline."""


class AgentDead(AgentError):
    """The agent was marked dead, or its proxy/guest process is gone: refused without dialing."""


class AgentRpcError(AgentError):
    """The agent answered with an error status (``code`` is a grpc.StatusCode name)."""

    def __init__(
        self,
        rpc: str,
        code: str,
        details: str,
        *,
        sandbox_id: str | None = None,
        container_id: str | None = None,
    ) -> None:
        self.details = details
        super().__init__(
            f"{code}: {details}",
            rpc=rpc,
            sandbox_id=sandbox_id,
            container_id=container_id,
            code=code,
        )
