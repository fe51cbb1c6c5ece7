"""Connections to the fleet log: options passed through to nats-py, errors made plain.

Secrets (passwords or tokens in URLs, creds and nkey files, TLS keys) go to nats-py
and nowhere else: every message we print names a server by its redacted URL.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from ..errors import InvalidRequest
from .errors import FleetAuthFailed, FleetUnreachable, StreamConflict
from .wire import host_filter

DUPLICATE_WINDOW = 600.0   # s: longer than any reconnect, so a resend is always a duplicate
_SCHEMES = ("nats", "tls", "ws", "wss")


@dataclass(frozen=True)
class NatsOptions:
    """How to reach the fleet log. `urls` may name several servers of one cluster."""

    urls: tuple[str, ...]
    creds: str | None = None          # a .creds file (JWT + nkey seed)
    nkey_seed: str | None = None      # an nkey seed file
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    connect_timeout: float = 2.0
    request_timeout: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, **kwargs: Any) -> NatsOptions:
        """`nats://h:p[,nats://h2:p2...]`; refuses what is not a NATS URL (exit 2)."""
        urls = tuple(u.strip() for u in text.split(",") if u.strip())
        if not urls:
            raise InvalidRequest("no NATS URL: pass --nats URL or set [fleet] nats_url")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in _SCHEMES or not parts.hostname:
                raise InvalidRequest(f"bad NATS URL {redact(url)!r}: expected "
                                     "nats://HOST:PORT (or tls://, ws://, wss://)")
            try:
                parts.port  # noqa: B018 - raises on a port that is not a number
            except ValueError:
                raise InvalidRequest(f"bad NATS URL {redact(url)!r}: bad port") from None
        return cls(urls, **kwargs)

    def where(self) -> str:
        return ",".join(redact(u) for u in self.urls)

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca or self.tls_cert):
            return None
        ctx = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx


def redact(url: str) -> str:
    """The URL without user, password or token."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _is_auth(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, nats.errors.AuthorizationError | ssl.SSLError) or \
        "authorization" in text or "authentication" in text


async def connect(opts: NatsOptions, first: int = 0) -> Client:
    """A connection to the first server that answers, trying from `urls[first]` on.

    nats-py's own reconnection is off: a broken connection is closed and replaced, so
    nothing it buffered can reach the server after a resend (no reordering).
    """
    problems = []
    for i in range(len(opts.urls)):
        url = opts.urls[(first + i) % len(opts.urls)]
        try:
            return await _connect_one(opts, url)
        except FleetAuthFailed:
            raise
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            problems.append(f"{redact(url)}: {reason(exc)}")
    raise FleetUnreachable("cannot reach NATS: " + "; ".join(problems))


async def _connect_one(opts: NatsOptions, url: str) -> Client:
    try:
        tls = opts.tls_context()
    except (OSError, ssl.SSLError) as exc:
        raise InvalidRequest(f"TLS settings cannot be used: {exc}") from None
    seen: list[Exception] = []

    async def keep(exc: Exception) -> None:
        """Instead of nats-py's default, which logs (and URLs may hold secrets)."""
        seen.append(exc)

    try:
        return await nats.connect(
            servers=[url], allow_reconnect=False, max_reconnect_attempts=1,
            reconnect_time_wait=0.1, connect_timeout=opts.connect_timeout, error_cb=keep,
            tls=tls, user_credentials=opts.creds, nkeys_seed=opts.nkey_seed, **opts.extra)
    except Exception as exc:  # noqa: BLE001 - sorted into auth / unreachable below
        exc = seen[-1] if seen and isinstance(exc, nats.errors.NoServersError) else exc
        if _is_auth(exc):
            raise FleetAuthFailed(f"NATS at {redact(url)} refused the credentials: "
                                  f"{reason(exc)}") from None
        if isinstance(exc, OSError | nats.errors.Error | TimeoutError):
            raise exc from None
        raise FleetUnreachable(f"cannot reach NATS at {redact(url)}: {reason(exc)}"
                               ) from None


def reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


async def ensure_stream(js: JetStreamContext, name: str, replicas: int) -> None:
    """Create the stream if missing; refuse one that does not hold exactly our subjects."""
    wanted = [host_filter(None)]
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        config = api.StreamConfig(
            name=name, subjects=wanted, retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE, num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW)
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            raise StreamConflict(f"cannot create stream {name!r} for {wanted[0]}: "
                                 f"{exc.description}") from None
        return
    if list(info.config.subjects or []) != wanted:
        raise StreamConflict(f"stream {name!r} exists with subjects "
                             f"{info.config.subjects}, not {wanted}")
