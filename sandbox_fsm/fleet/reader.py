"""Reading the fleet log back: every message of one host, or of all, in stream order.

An ordered consumer (ephemeral, flow-controlled, recreated by nats-py on a gap) reads
until the stream holds nothing more for the filter; nothing is created that outlives
the read.
"""

from __future__ import annotations

from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from . import wire
from .connect import NatsOptions, connect, reason
from .errors import FleetStreamMissing, FleetUnreachable


class Messages:
    """What one read found: parsed messages in stream order, and those that would not
    parse (a shipper never sends them; verify reports them)."""

    def __init__(self) -> None:
        self.shipped: list[wire.Shipped] = []
        self.bad: list[str] = []


async def read_messages(opts: NatsOptions, stream: str, host: str | None = None,
                        idle_timeout: float = 5.0) -> Messages:
    nc = await connect(opts)
    try:
        return await _read(nc, stream, host, idle_timeout)
    except (nats.errors.Error, TimeoutError) as exc:
        raise FleetUnreachable(f"reading stream {stream!r} at {opts.where()}: "
                               f"{reason(exc)}") from None
    finally:
        await nc.close()


async def _count(nc: Client, stream: str, subject: str) -> int:
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream, subjects_filter=subject)
    except nats.js.errors.NotFoundError:
        raise FleetStreamMissing(f"no stream {stream!r} at NATS") from None
    return sum((info.state.subjects or {}).values())


async def _subscribe(nc: Client, stream: str, subject: str, attempts: int = 8) -> Any:
    """An ordered consumer. A cluster that lost a node may place the consumer on it (the
    server picks a peer of the stream), and then its creation times out: a timeout is
    retried with a new placement, after a short one."""
    for attempt in range(attempts):
        try:
            return await nc.jetstream(timeout=2.0).subscribe(subject, stream=stream,
                                                             ordered_consumer=True)
        except nats.errors.TimeoutError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def _read(nc: Client, stream: str, host: str | None, idle_timeout: float) -> Messages:
    out = Messages()
    subject = wire.host_filter(host)
    if await _count(nc, stream, subject) == 0:
        return out
    sub = await _subscribe(nc, stream, subject)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_timeout)
            except nats.errors.TimeoutError:
                raise FleetUnreachable(f"stream {stream!r} stopped delivering before its "
                                       "end") from None
            meta = msg.metadata
            try:
                out.shipped.append(wire.shipped_from(meta.sequence.stream, msg.subject,
                                                     msg.headers, msg.data))
            except wire.BadMessage as exc:
                out.bad.append(str(exc))
            if meta.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()
