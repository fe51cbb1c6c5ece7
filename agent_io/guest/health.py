"""grpc.Health: Check answers SERVING once the server accepts calls; Version names us."""

from __future__ import annotations

import grpc

from agent_io import messages as m
from agent_io.guest.servicer import AGENT_VERSION
from protos import health_pb2_grpc


class HealthServicer(health_pb2_grpc.HealthServicer):
    def Check(self, request: m.health.CheckRequest,
              context: grpc.ServicerContext) -> m.health.HealthCheckResponse:
        return m.health.HealthCheckResponse(status=m.health.HealthCheckResponse.SERVING)

    def Version(self, request: m.health.CheckRequest,
                context: grpc.ServicerContext) -> m.health.VersionCheckResponse:
        return m.health.VersionCheckResponse(grpc_version=grpc.__version__,
                                             agent_version=AGENT_VERSION)
