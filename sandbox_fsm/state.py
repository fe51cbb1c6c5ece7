"""What the log says a sandbox is: plain data, folded from events (see projection.py).

The resource ledger lists everything the sandbox holds on the host, each entry with
what is needed to release it. Guest and proxy are derived from it, never stored twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .names import STARTED, State
from .saga import StepRecord


@dataclass
class ContainerState:
    id: str
    state: str = State.NEW
    config: dict = field(default_factory=dict)
    processes: dict[str, dict] = field(default_factory=dict)   # exec id -> {"status": ...}
    exit_status: int | None = None

    @property
    def status(self) -> str:
        """What every view shows (`sbx state`, `sbx list`, the OCI state): `stopped` once
        the container's own process has exited, though no stop operation ran yet."""
        if self.exit_status is not None and self.state in STARTED:
            return State.STOPPED
        return self.state


@dataclass
class SandboxState:
    id: str
    state: str = State.NEW
    config: dict = field(default_factory=dict)
    containers: dict[str, ContainerState] = field(default_factory=dict)
    ledger: dict[str, dict] = field(default_factory=dict)      # key -> resource
    operation: dict | None = None                             # the open operation, if any
    version: int = -1
    position: int = -1
    lost: bool = False

    @property
    def guest(self) -> dict | None:
        return self.ledger.get("process:guest")

    @property
    def proxy(self) -> dict | None:
        return self.ledger.get("process:proxy")

    @property
    def agent_url(self) -> str:
        """The URL the runtime dials: the proxy's when there is one, else the guest's."""
        for res in (self.proxy, self.guest):
            if res and res.get("url"):
                return res["url"]
        return ""

    @property
    def proxy_pid(self) -> int:
        return self.proxy["pid"] if self.proxy else -1

    def held(self) -> list[str]:
        """Human-readable names of what the ledger still holds."""
        return sorted(self.ledger)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxState:
        data = dict(data)
        data["containers"] = {
            cid: ContainerState(**c) for cid, c in data.get("containers", {}).items()}
        if data.get("operation"):
            op = data["operation"]
            data["operation"] = {**op, "records": {
                k: StepRecord.from_dict(r) for k, r in op["records"].items()}}
        return cls(**data)
