"""`Agents`: the one place that builds an `AgentClient`, from the one timeout table.

The configuration says "no deadline" as 0 (TOML has no null); the table says it as None,
which is what the client passes to gRPC. Recovery asks for the same table capped at its
step limit, so a hung guest costs it one bounded wait.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from agent_io import AgentClient

from .config import AgentConfig
from .errors import InvalidRequest
from .state import SandboxState

Timeouts = dict[str, float | None]


def timeout_table(config: AgentConfig, cap: float | None = None) -> Timeouts:
    """Deadline per rpc (None: none), `default` for the rest; with `cap`, none is longer."""
    timeouts = config.timeouts
    names = ("Check", "Version", *timeouts.rpc)
    table: Timeouts = {"default": timeouts.for_rpc("default"),
                       **{name: timeouts.for_rpc(name) for name in names}}
    if cap is not None:
        table = {name: cap if t is None else min(cap, t) for name, t in table.items()}
    return table


class Agents:
    """Clients for sandboxes' guests: one kept per sandbox while its URL holds, or a
    short-lived one with its own deadlines (recovery's bounded calls, exit probes)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._table = timeout_table(config)
        self._clients: dict[str, AgentClient] = {}
        self._guard = threading.Lock()

    def new_client(self, state: SandboxState, *, cap: float | None = None,
                   overrides: Mapping[str, float | None] | None = None,
                   keep_connection: bool | None = None) -> AgentClient:
        """A client of its own for the sandbox's guest; the caller closes it."""
        if not state.agent_url:
            raise InvalidRequest(
                f"sandbox {state.id!r} has no running guest (it is {state.state})")
        process = state.proxy or state.guest
        table = self._table if cap is None else timeout_table(self.config, cap)
        return AgentClient(
            state.agent_url, sandbox_id=state.id,
            keep_connection=self.config.keep_connection if keep_connection is None
            else keep_connection,
            timeouts={**table, **(overrides or {})},
            proxy_pid=process["pid"] if process else None)

    def for_sandbox(self, state: SandboxState) -> AgentClient:
        """The sandbox's kept client, dialled lazily, replaced when the URL changes."""
        with self._guard:
            client = self._clients.get(state.id)
        if client is None or client.url != state.agent_url:
            client = self.new_client(state)
            with self._guard:
                self._clients[state.id] = client
        return client

    def forget(self, sandbox_id: str) -> None:
        with self._guard:
            client = self._clients.pop(sandbox_id, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._guard:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
