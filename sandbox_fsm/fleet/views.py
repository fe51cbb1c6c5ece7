"""Fleet views: each host's events rebuilt from the stream, folded by the same code the
host uses (`projection`, `audit`), so `fleet list`/`fleet audit` cannot disagree with
`list`/`audit` on the host except by what has not been shipped yet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eventstore import RecordedEvent, StoreCorrupted

from ..audit import iso
from ..projection import project
from .wire import SANDBOX_STREAM, Shipped


def host_events(messages: Iterable[Shipped]) -> dict[str, list[RecordedEvent]]:
    """Per host, its events in the host's order: the first copy of each position (a
    later copy is a resend or a forgery, which `verify` reports), undecodable ones left
    out (also reported by `verify`)."""
    firsts: dict[str, dict[int, Shipped]] = {}
    for m in messages:
        firsts.setdefault(m.host, {}).setdefault(m.position, m)
    out: dict[str, list[RecordedEvent]] = {}
    for host in sorted(firsts):
        events = out[host] = []
        for position in sorted(firsts[host]):
            try:
                events.append(firsts[host][position].event())
            except StoreCorrupted:
                continue
    return out


def sandbox_streams(events: Iterable[RecordedEvent]) -> dict[str, list[RecordedEvent]]:
    """A host's events grouped by sandbox id, each group oldest first."""
    out: dict[str, list[RecordedEvent]] = {}
    for e in events:
        if e.stream.startswith(SANDBOX_STREAM):
            out.setdefault(e.stream[len(SANDBOX_STREAM):], []).append(e)
    return out


def fleet_list(by_host: dict[str, list[RecordedEvent]]) -> list[dict[str, Any]]:
    """Every sandbox of every host, as `sbx list --json` shows it, with its host."""
    rows = []
    for host, events in by_host.items():
        for sid, stream in sorted(sandbox_streams(events).items()):
            state = project(stream, sid)
            rows.append({"host": host, "id": sid, "state": state.state,
                         "containers": {cid: c.status for cid, c in state.containers.items()},
                         "created": iso(stream[0].recorded_at)})
    return rows
