"""A real OTLP/gRPC receiver for tests: opentelemetry-proto's TraceService, keeping what
it is sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span


class Receiver(service_grpc.TraceServiceServicer):
    """A TraceService that keeps every ExportTraceServiceRequest it is sent."""

    def __init__(self) -> None:
        self.requests: list[service.ExportTraceServiceRequest] = []
        self.changed = threading.Condition()
        self.url = ""

    def Export(self, request: service.ExportTraceServiceRequest,  # noqa: N802 - the rpc
               context: grpc.ServicerContext) -> service.ExportTraceServiceResponse:
        with self.changed:
            self.requests.append(request)
            self.changed.notify_all()
        return service.ExportTraceServiceResponse()

    def spans(self) -> list[Span]:
        with self.changed:
            return [span for request in self.requests for rs in request.resource_spans
                    for ss in rs.scope_spans for span in ss.spans]

    def clear(self) -> None:
        with self.changed:
            self.requests.clear()

    def wait_for(self, done: Callable[[list[Span]], bool], timeout: float = 30) -> list[Span]:
        deadline = time.monotonic() + timeout
        while not done(spans := self.spans()):
            assert time.monotonic() < deadline, f"receiver got {len(spans)} spans"
            with self.changed:
                self.changed.wait(0.2)
        return spans
