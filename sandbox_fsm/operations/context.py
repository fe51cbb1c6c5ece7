"""What a step sees while it runs: the sandbox as the log says, its layout, and a narrow
`StepHost` (not the whole runtime), so a step can be read and tested on its own."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent_io import AgentClient, AgentDead, AgentRpcError, AgentUnavailable
from eventstore import RecordedEvent

from ..config import RuntimeConfig
from ..guestspec.paths import GUEST_SHARED_DIR
from ..host import ProcessIdentity, SandboxLayout
from ..names import Kind
from ..saga import StepRecord
from ..state import SandboxState

T = TypeVar("T")


class StepHost(Protocol):
    """Exactly what steps use of the runtime that runs them."""

    @property
    def config(self) -> RuntimeConfig: ...

    @property
    def driver(self) -> str: ...

    @property
    def private_paths(self) -> list[str]:
        """The runtime's own dirs (runtime dir, event store): never in a container's view."""
        ...

    def layout(self, sandbox_id: str) -> SandboxLayout: ...

    @property
    def image_cache(self) -> Path:
        """Where the qemu driver's guest images are kept (under the state dir)."""
        ...

    def state(self, sandbox_id: str) -> SandboxState: ...

    def events(self, sandbox_id: str) -> list[RecordedEvent]: ...

    def agent_for(self, state: SandboxState) -> AgentClient: ...

    def forget_agent(self, sandbox_id: str) -> None: ...


@dataclass
class OpContext:
    """A sandbox operation's context (`container_id` is None)."""

    host: StepHost
    sandbox_id: str
    layout: SandboxLayout
    container_id: str | None = None
    params: dict = field(default_factory=dict)
    records: list[StepRecord] = field(default_factory=list)   # this operation's steps so far

    @property
    def state(self) -> SandboxState:
        """The sandbox as the log says now, including this operation's recorded steps."""
        return self.host.state(self.sandbox_id)

    def agent(self) -> AgentClient:
        return self.host.agent_for(self.state)

    def guest_path(self, host_path: str | os.PathLike[str]) -> str:
        """The guest's view of a path under the sandbox's mounts/ dir."""
        rel = os.path.relpath(os.fspath(host_path), self.layout.mounts)
        return GUEST_SHARED_DIR + rel

    def mounts(self, container_id: str | None = None) -> Iterator[dict]:
        for res in list(self.state.ledger.values()):
            if res["kind"] == Kind.MOUNT and (
                    container_id is None or res.get("container") == container_id):
                yield res


@dataclass
class ContainerContext(OpContext):
    """A container operation's context: `container_id` is always set."""

    container_id: str = ""


def context_for(host: StepHost, sandbox_id: str, layout: SandboxLayout,
                container_id: str | None, params: dict | None = None,
                records: list[StepRecord] | None = None) -> OpContext:
    """The context a step of this operation gets: a ContainerContext for a container."""
    records = records if records is not None else []
    if container_id is None:
        return OpContext(host, sandbox_id, layout, None, params or {}, records)
    return ContainerContext(host, sandbox_id, layout, container_id, params or {}, records)


def identity(resource: dict) -> ProcessIdentity:
    return ProcessIdentity(resource["pid"], resource["start_time"])


UNAVAILABLE_RETRIES = (0.1, 0.3, 0.9)   # seconds between tries of a transient UNAVAILABLE


def tolerate_gone(call: Callable[[], T]) -> T | None:
    """Run an agent call whose target may already be gone: NOT_FOUND, or a guest known to
    be dead, counts as done. UNAVAILABLE says nothing about the target (the agent did not
    answer): it is retried, and if it persists the step fails with it."""
    for pause in (*UNAVAILABLE_RETRIES, None):
        try:
            return call()
        except AgentDead:
            return None
        except AgentUnavailable:
            if pause is None:
                raise
            time.sleep(pause)
        except AgentRpcError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
    return None


def mount_resource(path: str, **extra: Any) -> dict:
    return {"kind": Kind.MOUNT, "key": f"mount:{path}", "path": path, **extra}


def dir_resource(path: str, **extra: Any) -> dict:
    return {"kind": Kind.DIR, "key": f"dir:{path}", "path": path, **extra}
