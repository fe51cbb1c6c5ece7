"""Failures the servicer turns into gRPC status codes (messages name rpc, id and path)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import grpc

log = logging.getLogger("agent_io.guest")


class NotFound(LookupError):
    """No such container or process."""


class AlreadyExists(Exception):
    """A container or process id that is already taken."""


class WrongState(Exception):
    """The request does not fit the object's current state (FAILED_PRECONDITION)."""


class Timeout(Exception):
    """The agent's own time limit ran out (RemoveContainer timeout)."""


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    """The gRPC code a request failure maps to; None for a bug (reported as INTERNAL)."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return None


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the agent's exceptions into gRPC statuses with the exception's message."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            code = status_for(exc)
            if code is None:
                log.exception("%s failed", method.__name__)
                code = grpc.StatusCode.INTERNAL
            context.abort(code, f"{method.__name__}: {exc}" if code is grpc.StatusCode.INTERNAL
                          else str(exc))

    return wrapper


_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (WrongState, grpc.StatusCode.FAILED_PRECONDITION),
    (Timeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (BrokenPipeError, grpc.StatusCode.FAILED_PRECONDITION),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (FileNotFoundError, grpc.StatusCode.NOT_FOUND),
]
