"""Sending a log's spans to an OTLP/gRPC collector, once or following the log.

The OpenTelemetry SDK's own OTLP exporter does the wire work (batches, retries with
backoff on UNAVAILABLE, deadlines); this module only chooses what to send and when.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from ..errors import InvalidRequest, SandboxError
from ..names import Ev, Op
from .spans import SandboxTrace

BATCH = 512                    # spans per ExportTraceServiceRequest (well under 4 MiB)
STREAM_PREFIX = "sandbox-"


class ExportFailed(SandboxError):
    """The collector did not accept the spans within the time limit."""


def endpoint(url: str) -> tuple[str, bool]:
    """(host:port, insecure) of `--otlp-endpoint`: http://H:P, https://H:P or H:P."""
    text = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        port = None
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None \
            or parts.path not in ("", "/") or parts.query or parts.username:
        raise InvalidRequest(f"--otlp-endpoint {url!r}: expected http://HOST:PORT or "
                             "https://HOST:PORT (OTLP over gRPC, e.g. http://127.0.0.1:4317)")
    return parts.netloc, parts.scheme == "http"


def resource(log_path: str) -> Resource:
    return Resource.create({"service.name": "sbx", "sbx.log": log_path})


@dataclass
class Sender:
    """One exporter for the whole run; `send` raises ExportFailed on a refused batch."""

    url: str
    timeout: float = 10.0
    sent: int = 0
    _exporter: OTLPSpanExporter = field(init=False)

    def __post_init__(self) -> None:
        target, insecure = endpoint(self.url)
        self._exporter = OTLPSpanExporter(endpoint=target, insecure=insecure,
                                          timeout=self.timeout)

    def send(self, spans: Sequence[ReadableSpan]) -> None:
        for start in range(0, len(spans), BATCH):
            batch = spans[start:start + BATCH]
            if self._exporter.export(batch) is not SpanExportResult.SUCCESS:
                raise ExportFailed(f"the OTLP collector at {self.url} did not accept "
                                   f"{len(batch)} spans within {self.timeout:g}s")
            self.sent += len(batch)

    def close(self) -> None:
        self._exporter.shutdown()


def quiet_exporter_logs() -> None:
    """The SDK logs each failed attempt; the CLI reports the failure once, itself."""
    logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter").setLevel(
        logging.CRITICAL)


def export_all(streams: Iterable[tuple[str, Sequence[Any]]], res: Resource,
               send: Callable[[Sequence[ReadableSpan]], None]) -> int:
    """Every span of every (sandbox id, events); returns the number of sandboxes."""
    count = 0
    for sandbox_id, events in streams:
        send(SandboxTrace(events, sandbox_id, res).spans(finished_only=True))
        count += 1
    return count


def follow(store: Any, wanted: set[str] | None, res: Resource,
           send: Callable[[Sequence[ReadableSpan]], None], from_position: int,
           stop: Any) -> None:
    """Export each operation when it completes or aborts; the sandbox's root span when
    it is deleted and, for the others seen, when `stop` is set."""
    seen: dict[str, Any] = {}
    for event in store.follow(from_position, stop=stop):
        sandbox_id = event.stream[len(STREAM_PREFIX):]
        if not event.stream.startswith(STREAM_PREFIX) or \
                (wanted is not None and sandbox_id not in wanted):
            continue
        seen[sandbox_id] = event
        if event.type not in (Ev.OPERATION_COMPLETED, Ev.OPERATION_ABORTED):
            continue
        trace = _trace(store, event, sandbox_id, res)
        op = next(o for o in trace.life.operations if o.op == event.data["op"])
        spans = trace.operation_spans(op)
        if op.operation == Op.DELETE_SANDBOX and op.status == "completed":
            spans.append(trace.sandbox_span())
            seen.pop(sandbox_id)
        send(spans)
    for sandbox_id, last in seen.items():
        send([_trace(store, last, sandbox_id, res).sandbox_span()])


def _trace(store: Any, last: Any, sandbox_id: str, res: Resource) -> SandboxTrace:
    events = list(store.read_stream(last.stream, to_version=last.version))
    return SandboxTrace(events, sandbox_id, res)
