"""Admission: which calls the agent starts at all.

Late calls. A call whose caller already gave up (its deadline passed while it queued or
was held up) is not started: the caller treats it as failed and may be undoing it right
now, so doing it after all would leave the guest in a state the runtime never recorded
(a container created after its removal, a process paused after its resume).

Blocking calls may never take the last workers of the server.

The sync gRPC server runs every call on one pool of worker threads. WaitProcess, the
stdio reads and GetOOMEvent hold their worker until something happens in the guest,
so enough of them (one per `sbx exec` session) would leave Health.Check and every
short call queued behind them until their deadlines pass. Blocking calls get at most
BLOCKING of the WORKERS; the rest are reserved for everything else, and a blocking call
beyond the limit is refused at once with RESOURCE_EXHAUSTED instead of queueing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

BLOCKING_RPCS = frozenset({"WaitProcess", "ReadStdout", "ReadStderr", "GetOOMEvent"})
BLOCKING = 480        # concurrent blocking calls (each holds a thread, not a CPU)
RESERVED = 32         # workers only short calls (Check, Stats, Signal ...) may use
WORKERS = BLOCKING + RESERVED


class BlockingAdmission(grpc.ServerInterceptor):
    """Counts blocking calls in flight; refuses one more than `limit`."""

    def __init__(self, limit: int = BLOCKING) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self.limit = limit

    def intercept_service(self, continuation: Callable[[Any], Any],
                          handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        rpc = handler_call_details.method.rsplit("/", 1)[-1]
        if handler is None or rpc not in BLOCKING_RPCS or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        def admitted(request: Any, context: grpc.ServicerContext) -> Any:
            if not self._slots.acquire(blocking=False):
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{rpc}: {self.limit} blocking calls are already waiting in "
                              "this agent; retry when one ends")
            try:
                return inner(request, context)
            finally:
                self._slots.release()

        return grpc.unary_unary_rpc_method_handler(
            admitted, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


class LateCalls(grpc.ServerInterceptor):
    """Refuses (CANCELLED) to start a call whose client gave up or whose deadline passed.

    It sits innermost, after anything that may hold a call up (a fault plan's delay)."""

    def intercept_service(self, continuation: Callable[[Any], Any],
                          handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        rpc = handler_call_details.method.rsplit("/", 1)[-1]

        def timely(request: Any, context: grpc.ServicerContext) -> Any:
            remaining = context.time_remaining()
            if not context.is_active() or (remaining is not None and remaining <= 0):
                context.abort(grpc.StatusCode.CANCELLED,
                              f"{rpc}: the caller gave up before it started; not done")
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            timely, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
