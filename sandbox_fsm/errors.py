"""Errors a runtime author (and the CLI) can tell apart: each maps to one exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agent_io import AgentError


class SandboxError(Exception):
    """Base of every error sandbox_fsm raises on purpose."""

    exit_code = 1


class InvalidRequest(SandboxError, ValueError):
    """Bad input: a malformed id, config or argument. Nothing was appended."""

    exit_code = 2


class IllegalTransition(InvalidRequest):
    """The lifecycle machine does not allow this trigger from the current state."""


class Conflict(SandboxError):
    """Another process is operating on the same sandbox (or won the race to the log)."""

    exit_code = 3


class NotFound(SandboxError, LookupError):
    """No such sandbox or container in the log."""

    exit_code = 4


class OperationFailed(SandboxError):
    """An operation failed at a step; its compensations ran before this was raised (a
    teardown, which is never undone, says `rolled="forward"`: recovery finishes it)."""

    def __init__(self, operation: str, step: str, cause: BaseException | str, *,
                 sandbox_id: str, state: str, held: list[str] | None = None,
                 container_id: str | None = None, rolled: str = "back") -> None:
        self.operation = operation
        self.step = step
        self.cause = cause
        self.sandbox_id = sandbox_id
        self.state = state
        self.held = held or []
        self.container_id = container_id
        subject = f"container {container_id!r}" if container_id else "sandbox"
        text = (f"{operation} of sandbox {sandbox_id!r} failed at step {step!r}: {cause}; "
                f"rolled {rolled}, {subject} is {state}")
        if self.held:
            text += f"; still held: {', '.join(self.held)}"
        super().__init__(text)


class GuestError(SandboxError):
    """A call to the guest agent failed: the guest is gone, did not answer in time, or
    refused the call. `cause` is the agent_io error, which says which rpc and why."""

    def __init__(self, cause: AgentError) -> None:
        self.cause = cause
        super().__init__(str(cause))


@contextmanager
def guest_errors() -> Iterator[None]:
    """Let no agent_io error cross the public API: it becomes a GuestError."""
    try:
        yield
    except AgentError as exc:
        raise GuestError(exc) from exc
