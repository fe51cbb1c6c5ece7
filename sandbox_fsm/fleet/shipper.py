"""`Shipper`: this host's log into the fleet's JetStream stream, exactly once, in order.

- Resumes from the last position the stream holds for this host, asked of the server
  (a local note could be stale or lost with the disk).
- Publishes asynchronously with at most `max_in_flight` unacknowledged messages; every
  message carries `Nats-Msg-Id: <host>:<position>`, so a resend is a duplicate.
- A broken connection, a server restart or an unanswered publish closes the connection;
  a new one resumes after the last position acknowledged in order. nats-py's own
  reconnect buffer is not used: it could deliver a later message after a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from eventstore import EventStore, RecordedEvent

from . import wire
from .connect import NatsOptions, connect, ensure_stream, reason
from .errors import FleetAuthFailed, FleetUnreachable, LocalLogMismatch, StreamConflict
from .feed import Feed

GENESIS = "00" * 32
_TRANSIENT = (OSError, TimeoutError, nats.errors.Error, nats.js.errors.Error)


Pending = deque[tuple[int, float, "asyncio.Future[Any]"]]


class Interrupted(Exception):
    """The connection broke or stopped answering: reconnect and resume."""


@dataclass
class ShipStatus:
    """What the status line shows. `latency` is the age of the last event when acked (s)."""

    host: str
    shipped: int = -1       # last position acknowledged in order
    head: int = -1          # last position of the local log seen
    published: int = 0      # messages sent this run (resends included)
    duplicates: int = 0     # acks that said "already stored"
    reconnects: int = 0
    latency: float = 0.0
    connected: bool = False

    @property
    def lag(self) -> int:
        return max(self.head - self.shipped, 0)

    def line(self) -> str:
        link = "connected" if self.connected else "reconnecting"
        return (f"host {self.host}: shipped through position {self.shipped} of {self.head} "
                f"(lag {self.lag} events, {self.latency * 1000:.0f} ms), "
                f"{self.reconnects} reconnects, {link}")


class Shipper:
    """Ship `store` to the stream `stream` as host `host_id` (see module docstring)."""

    def __init__(self, store: EventStore, options: NatsOptions, host_id: str, *,
                 stream: str = "SBX_EVENTS", replicas: int = 1, max_in_flight: int = 256,
                 ack_timeout: float = 5.0,
                 on_status: Callable[[ShipStatus], None] | None = None,
                 status_every: float = 1.0) -> None:
        self.store, self.options, self.stream = store, options, stream
        self.replicas, self.max_in_flight, self.ack_timeout = replicas, max_in_flight, ack_timeout
        self.status = ShipStatus(host_id)
        self._on_status, self._status_every, self._last_status = on_status, status_every, 0.0
        self._nc: Client | None = None
        self._resumed = False

    @property
    def host(self) -> str:
        return self.status.host

    async def start(self) -> None:
        """Connect and check the stream; errors here are the caller's (bad URL, creds)."""
        self._nc = await connect(self.options)
        try:
            await ensure_stream(self._nc.jetstream(), self.stream, self.replicas)
            await self._resume_point(self._nc.jetstream())
        except _TRANSIENT as exc:
            await self._close()
            raise FleetUnreachable(f"JetStream at {self.options.where()} did not answer "
                                   f"(is it enabled, -js?): {reason(exc)}") from None
        except BaseException:
            await self._close()
            raise
        self.status.connected = True

    async def run(self, *, until_caught_up: bool = False,
                  stop: asyncio.Event | None = None) -> ShipStatus:
        """Ship until `stop` is set (or, one-shot, until the log's end is acknowledged)."""
        stop = stop or asyncio.Event()
        if self._nc is None:
            await self.start()
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    if self._nc is None:
                        self._nc = await connect(self.options, attempt)
                        self.status.connected = True
                    await self._session(self._nc.jetstream(), until_caught_up, stop)
                    break
                except (FleetAuthFailed, StreamConflict, LocalLogMismatch):
                    raise
                except (Interrupted, FleetUnreachable, *_TRANSIENT) as exc:
                    attempt += 1
                    await self._lost(exc, attempt, stop)
        finally:
            await self._close()
        self._report(force=True)
        return self.status

    async def _lost(self, exc: BaseException, attempt: int, stop: asyncio.Event) -> None:
        self.status.connected = False
        self.status.reconnects += 1
        await self._close()
        self._report(force=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(0.1 * attempt, 2.0))

    async def _close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _resume_point(self, js: JetStreamContext) -> int:
        """The last position the stream holds for this host (-1: none), checked against
        the local log so a reused host id or a rewritten log is refused, not merged."""
        try:
            msg = await js.get_last_msg(self.stream, wire.host_filter(self.host))
        except nats.js.errors.NotFoundError:
            return -1
        try:
            last = wire.shipped_from(msg.seq or 0, msg.subject or "", msg.headers, b"")
        except wire.BadMessage as exc:
            raise StreamConflict(f"stream {self.stream!r}: {exc}") from None
        local = next(iter(self.store.read_all(last.position, last.position)), None)
        if local is None or local.hash != last.hash:
            raise StreamConflict(
                f"stream {self.stream!r} holds position {last.position} of host "
                f"{self.host!r} with hash {last.hash[:16]}..., the local log "
                + ("ends before it" if local is None else f"has {local.hash[:16]}...")
                + ": another host uses this id, or this log was rewritten")
        return last.position

    async def _session(self, js: JetStreamContext, until_caught_up: bool,
                       stop: asyncio.Event) -> None:
        """One connection's worth of shipping, from the server's resume point."""
        await ensure_stream(js, self.stream, self.replicas)   # it may have been removed
        resumed = await self._resume_point(js)
        if self._resumed:   # after a break: resend from the last ack in order (duplicates
            resumed = min(resumed, self.status.shipped)   # are dropped by the stream)
        self._resumed, self.status.shipped, start = True, resumed, resumed + 1
        prev = GENESIS if start == 0 else next(self.store.read_all(start - 1, start - 1)).hash
        feed = Feed(self.store, start)
        pending: Pending = deque()
        try:
            while not stop.is_set():
                batch = await feed.next_batch()
                prev = await self._publish(js, batch, prev, pending)
                if not batch:
                    await self._drain(pending, keep=0)
                    if until_caught_up and self.status.shipped >= self.store.last_position():
                        return
                self._report()
            await self._drain(pending, keep=0)  # stopped: what was sent is acknowledged
        finally:
            feed.close()
            for _, _, fut in pending:
                fut.cancel()

    async def _publish(self, js: JetStreamContext, batch: list[RecordedEvent], prev: str,
                       pending: Pending) -> str:
        """Send a batch, keeping at most max_in_flight unacknowledged; returns the last
        hash sent (the next event's previous hash)."""
        for event in batch:
            body = wire.canonical_body(event)
            if not wire.chains(prev, event.position, body, event.hash):
                raise LocalLogMismatch(f"event at position {event.position} does not "
                                       "re-encode to the bytes its hash covers; run `sbx verify`")
            if len(pending) >= self.max_in_flight:   # one wait frees half the window
                await self._drain(pending, keep=self.max_in_flight // 2)
            fut = await js.publish_async(wire.subject_of(self.host, event.stream), body,
                                         headers=wire.headers_of(self.host, event, prev))
            pending.append((event.position, event.recorded_at / 1e9, fut))
            self.status.published += 1
            prev = event.hash
            while pending and pending[0][2].done():
                self._take(pending.popleft())
        return prev

    async def _drain(self, pending: Pending, keep: int) -> None:
        """Take acknowledgements in order until at most `keep` are outstanding. Acks come
        back in order, so waiting for the last one needed settles those before it."""
        if len(pending) > keep:
            await self._settle(pending[len(pending) - keep - 1])
        while len(pending) > keep:
            await self._settle(pending[0])
            self._take(pending.popleft())

    async def _settle(self, item: tuple[int, float, asyncio.Future]) -> None:
        """Wait for one acknowledgement; a silent server or a lost link means reconnect."""
        position, _, fut = item
        deadline = time.monotonic() + self.ack_timeout
        while not fut.done():
            await asyncio.wait([fut], timeout=0.1)
            if not fut.done() and (self._nc is None or not self._nc.is_connected):
                raise Interrupted("connection lost")
            if not fut.done() and time.monotonic() > deadline:
                raise Interrupted(f"no acknowledgement for position {position} "
                                  f"within {self.ack_timeout}s")

    def _take(self, item: tuple[int, float, asyncio.Future]) -> None:
        """Record one settled acknowledgement (the next in position order)."""
        position, recorded, fut = item
        ack = fut.result()
        if ack.stream != self.stream:
            raise StreamConflict(f"position {position} was stored in stream {ack.stream!r}, "
                                 f"not {self.stream!r}")
        self.status.duplicates += bool(ack.duplicate)
        self.status.shipped = position
        self.status.latency = time.time() - recorded

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_status >= self._status_every:
            self._last_status = now
            self.status.head = max(self.store.last_position(), self.status.shipped)
            if self._on_status:
                self._on_status(self.status)
