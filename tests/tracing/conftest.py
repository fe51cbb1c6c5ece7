"""Fixtures for trace tests: one recorded incident, and a real OTLP/gRPC receiver."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import incident
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc
from otlp_receiver import Receiver


@pytest.fixture(scope="module")
def incident_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[incident.IncidentLog]:
    yield from incident.incident_log(tmp_path_factory)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = grpc.server(ThreadPoolExecutor(2))
    servicer = Receiver()
    service_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    servicer.url = f"http://127.0.0.1:{port}"
    try:
        yield servicer
    finally:
        server.stop(0)
