"""The state and resource ledger at every position, as compact changes for the page.

One pass of the same `Projector` that `sbx audit --at` folds with, so the ledger the
page shows at a position is exactly the one `audit.state_at` gives. Only changes are
kept (an entry appears, an entry goes, the state moves): the page rebuilds the ledger at
a picked position by replaying these changes, which is replay of a finished fold, not
a second fold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..projection import Projector
from ..state import SandboxState

DETAIL_FIELDS = ("role", "pid", "start_time", "path", "container", "url", "destination")


def resource_view(resource: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a ledger entry: key, kind and its identifying fields."""
    detail = {k: resource[k] for k in DETAIL_FIELDS if resource.get(k) not in (None, "")}
    return {"key": resource.get("key", ""), "kind": resource.get("kind", ""), "detail": detail}


def _status(state: SandboxState) -> dict[str, Any]:
    return {"state": state.state, "lost": state.lost,
            "operation": (state.operation or {}).get("operation"),
            "containers": {cid: c.state + ("" if c.exit_status is None
                                           else f" (exit {c.exit_status})")
                           for cid, c in state.containers.items()}}


def changes(events: Sequence[Any], sandbox_id: str) -> dict[str, Any]:
    """{"entries": [resource views], "ledger": [[position, [added ids], [removed keys]]],
    "status": [[position, status]]} for one sandbox's events, oldest first."""
    projector = Projector(sandbox_id)
    interned: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    ledger: list[list[Any]] = []
    status: list[list[Any]] = []
    held: dict[str, dict] = {}
    last_status: dict[str, Any] | None = None
    for event in events:
        projector.apply(event)
        now = projector.state.ledger
        if now != held:
            added = []
            for key, res in now.items():
                if held.get(key) is not res:
                    text = json.dumps(resource_view(res), sort_keys=True, default=str)
                    if text not in interned:
                        interned[text] = len(entries)
                        entries.append(resource_view(res))
                    added.append(interned[text])
            ledger.append([event.position, added, [k for k in held if k not in now]])
            held = dict(now)
        current = _status(projector.state)
        if current != last_status:
            status.append([event.position, current])
            last_status = current
    return {"entries": entries, "ledger": ledger, "status": status}
