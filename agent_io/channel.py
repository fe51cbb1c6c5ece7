"""What sits under `AgentClient`: the deadline table, the channel and its stubs, liveness
of the process behind the socket, and gRPC failures turned into `agent_io.errors`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from agent_io import messages as m
from agent_io.errors import AgentDead, AgentError, AgentRpcError, AgentTimeout, AgentUnavailable
from protos import agent_pb2_grpc, health_pb2_grpc

# Deadlines in seconds; None is "no deadline" (the rpcs that block until something
# happens in the guest).
DEFAULT_TIMEOUTS: dict[str, float | None] = {
    "default": 60.0,
    "Check": 30.0,
    "Version": 30.0,
    "WaitProcess": None,
    "GetOOMEvent": None,
    "ReadStdout": None,
    "ReadStderr": None,
}
HEALTH_RPCS = frozenset(x.name for x in m.health.DESCRIPTOR.services_by_name["Health"].methods)
AGENT_RPCS = frozenset(
    x.name for x in m.agent.DESCRIPTOR.services_by_name["AgentService"].methods
)


def merge_timeouts(overrides: Mapping[str, float | None] | None) -> dict[str, float | None]:
    """DEFAULT_TIMEOUTS with `overrides` (rpc name or "default" -> seconds or None)."""
    table = dict(DEFAULT_TIMEOUTS)
    for name, value in (overrides or {}).items():
        if name != "default" and name not in AGENT_RPCS | HEALTH_RPCS:
            raise ValueError(f"timeouts: {name!r} is not an agent rpc name nor 'default'")
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise ValueError(f"timeouts[{name!r}]: {value!r} is not None or a number > 0")
        table[name] = value
    return table


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (signal 0, then /proc state)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line[stat_line.rindex(")") + 2] not in "ZX"


class Stubs:
    """One channel and the two service stubs bound to it."""

    def __init__(self, url: str, interceptors: Sequence[grpc.UnaryUnaryClientInterceptor]):
        self.channel = grpc.insecure_channel(url)
        channel = grpc.intercept_channel(self.channel, *interceptors) if interceptors \
            else self.channel
        self.agent = agent_pb2_grpc.AgentServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def method(self, rpc: str) -> Any:
        return getattr(self.health if rpc in HEALTH_RPCS else self.agent, rpc)


def translate(err: grpc.RpcError, *, rpc: str, url: str, dead: str | None,
              deadline: float | None, sandbox_id: str | None,
              container_id: str | None) -> AgentError:
    """The typed error for a failed call: which rpc, which sandbox, and why."""
    code = err.code() if callable(getattr(err, "code", None)) else None
    details = (err.details() if callable(getattr(err, "details", None)) else None) or ""
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    where = {"rpc": rpc, "sandbox_id": sandbox_id, "container_id": container_id}
    if dead is not None:
        return AgentDead(dead, code=name, **where)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return AgentTimeout(f"no answer within {deadline} s ({details})", code=name, **where)
    if code is grpc.StatusCode.UNAVAILABLE:
        return AgentUnavailable(f"agent at {url} unreachable: {details}", code=name, **where)
    return AgentRpcError(rpc, name, details, sandbox_id=sandbox_id, container_id=container_id)
