"""What a step sees while it runs: the sandbox as the log says, its layout, the runtime."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from agent_io import AgentClient, AgentDead, AgentRpcError, AgentUnavailable

from ..guestspec.paths import GUEST_SHARED_DIR
from ..host import ProcessIdentity, SandboxLayout
from ..saga import StepRecord
from ..state import SandboxState

if TYPE_CHECKING:
    from ..runtime import Runtime

T = TypeVar("T")



@dataclass
class OpContext:
    runtime: Runtime
    sandbox_id: str
    layout: SandboxLayout
    container_id: str | None = None
    params: dict = field(default_factory=dict)
    records: list[StepRecord] = field(default_factory=list)   # this operation's steps so far

    @property
    def state(self) -> SandboxState:
        """The sandbox as the log says now, including this operation's recorded steps."""
        return self.runtime.state(self.sandbox_id)

    def agent(self) -> AgentClient:
        return self.runtime.agent_for(self.state)

    def guest_path(self, host_path: str | os.PathLike[str]) -> str:
        """The guest's view of a path under the sandbox's mounts/ dir."""
        rel = os.path.relpath(os.fspath(host_path), self.layout.mounts)
        return GUEST_SHARED_DIR + rel

    def mounts(self, container_id: str | None = None) -> Iterator[dict]:
        for res in list(self.state.ledger.values()):
            if res["kind"] == "mount" and (
                    container_id is None or res.get("container") == container_id):
                yield res


def identity(resource: dict) -> ProcessIdentity:
    return ProcessIdentity(resource["pid"], resource["start_time"])


def tolerate_gone(call: Callable[[], T]) -> T | None:
    """Run an agent call whose target may already be gone: that counts as done."""
    try:
        return call()
    except (AgentUnavailable, AgentDead):
        return None
    except AgentRpcError as exc:
        if exc.code in ("NOT_FOUND", "UNAVAILABLE"):
            return None
        raise


def mount_resource(path: str, **extra: Any) -> dict:
    return {"kind": "mount", "key": f"mount:{path}", "path": path, **extra}


def dir_resource(path: str, **extra: Any) -> dict:
    return {"kind": "dir", "key": f"dir:{path}", "path": path, **extra}
