"""Fault plans: make an agent rpc fail, stall, hang or kill the agent at its Nth call.

A plan is a JSON list of rules::

    [{"rpc": "CreateContainer", "nth": 2, "action": "error", "code": "UNAVAILABLE"},
     {"rpc": "Check", "nth": "every", "action": "delay", "seconds": 0.5}]

``rpc`` is a bare rpc name of grpc.AgentService or grpc.Health; ``nth`` counts calls of
that rpc from 1 (or ``"every"``); the first matching rule wins. The guest agent installs
:meth:`FaultPlan.server_interceptor`; tests can inject the same faults client side with
:meth:`FaultPlan.client_interceptor`. Counters are per plan and thread-safe.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from agent_io import messages

ENV_VAR = "SBX_AGENT_FAULTS"
EXIT_CODE = 70
ACTIONS = ("error", "delay", "hang", "exit")
KNOWN_RPCS = frozenset(
    method.name
    for module, service in ((messages.agent, "AgentService"), (messages.health, "Health"))
    for method in module.DESCRIPTOR.services_by_name[service].methods
)
_RULE_KEYS = {"rpc", "nth", "action", "code", "seconds"}


@dataclass(frozen=True)
class FaultRule:
    """One validated rule; ``nth`` is None for "every"."""

    index: int
    rpc: str
    nth: int | None
    action: str
    code: grpc.StatusCode | None = None
    seconds: float = 0.0

    def describe(self, call: int) -> str:
        return f"fault plan rule #{self.index}: {self.action} at call {call} of {self.rpc}"


@dataclass(frozen=True)
class Fault:
    """A rule that fired for one call."""

    rule: FaultRule
    call: int

    @property
    def message(self) -> str:
        return self.rule.describe(self.call)


def _parse_rule(index: int, raw: Any) -> FaultRule:
    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"fault plan rule #{index} field {field!r}: {why}")

    if not isinstance(raw, Mapping):
        raise ValueError(f"fault plan rule #{index}: expected an object, got {raw!r}")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise bad(sorted(unknown)[0], f"unknown field (allowed: {sorted(_RULE_KEYS)})")
    rpc = raw.get("rpc")
    if not isinstance(rpc, str) or rpc not in KNOWN_RPCS:
        raise bad("rpc", f"{rpc!r} is not an AgentService or Health rpc")
    nth = raw.get("nth", "every")
    if nth != "every" and (isinstance(nth, bool) or not isinstance(nth, int) or nth < 1):
        raise bad("nth", f"{nth!r} is not an integer >= 1 or \"every\"")
    action = raw.get("action")
    if action not in ACTIONS:
        raise bad("action", f"{action!r} is not one of {list(ACTIONS)}")
    code = None
    if action == "error":
        name = raw.get("code")
        if not isinstance(name, str) or name not in grpc.StatusCode.__members__ or name == "OK":
            raise bad("code", f"{name!r} is not a grpc status code name other than OK")
        code = grpc.StatusCode[name]
    elif "code" in raw:
        raise bad("code", f"only meaningful for action 'error', not {action!r}")
    seconds = raw.get("seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise bad("seconds", f"{seconds!r} is not a number >= 0")
    if action == "delay" and "seconds" not in raw:
        raise bad("seconds", "required for action 'delay'")
    return FaultRule(index, rpc, None if nth == "every" else nth, action, code, float(seconds))


class FaultPlan:
    """A set of rules plus the per-rpc call counters they are matched against."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self.rules = tuple(rules)
        self._rpcs = frozenset(rule.rpc for rule in self.rules)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._released = threading.Event()

    @classmethod
    def from_rules(cls, rules: Iterable[Mapping[str, Any]]) -> FaultPlan:
        if isinstance(rules, str | bytes | Mapping):
            raise ValueError(f"fault plan must be a list of rules, got {type(rules).__name__}")
        return cls(_parse_rule(i, raw) for i, raw in enumerate(rules))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> FaultPlan:
        """From ``path``, else $SBX_AGENT_FAULTS (a path, or inline JSON starting with '['),
        else an empty plan."""
        if path is None:
            env = os.environ.get(ENV_VAR, "").strip()
            if not env:
                return cls()
            if env.startswith("["):
                return cls._parse(env, f"${ENV_VAR}")
            path = env
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read fault plan {path}: {exc.strerror}") from exc
        return cls._parse(text, str(path))

    @classmethod
    def _parse(cls, text: str, source: str) -> FaultPlan:
        try:
            rules = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"fault plan {source} is not valid JSON: {exc}") from exc
        if not isinstance(rules, list):
            raise ValueError(f"fault plan {source} must be a JSON list of rules")
        try:
            return cls.from_rules(rules)
        except ValueError as exc:
            raise ValueError(f"fault plan {source}: {exc}") from exc

    def __bool__(self) -> bool:
        return bool(self.rules)

    def calls(self, rpc: str) -> int:
        """How many calls of ``rpc`` this plan has counted."""
        with self._lock:
            return self._counts[rpc]

    def next_fault(self, rpc: str) -> Fault | None:
        """Count one call of ``rpc``; return the rule that fires for it, if any."""
        if rpc not in self._rpcs:
            return None
        with self._lock:
            self._counts[rpc] += 1
            call = self._counts[rpc]
        for rule in self.rules:
            if rule.rpc == rpc and (rule.nth is None or rule.nth == call):
                return Fault(rule, call)
        return None

    def release(self) -> None:
        """Wake every call blocked by a "hang" rule (client side, or a stopping server)."""
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def wait_released(self, timeout: float | None) -> bool:
        return self._released.wait(timeout)

    def server_interceptor(self) -> grpc.ServerInterceptor:
        return _ServerFaults(self)

    def client_interceptor(self) -> grpc.UnaryUnaryClientInterceptor:
        return _ClientFaults(self)


def _rpc_name(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class _ServerFaults(grpc.ServerInterceptor):
    """Applies a plan inside the agent, before the real handler runs."""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        fault = self._plan.next_fault(_rpc_name(handler_call_details.method))
        if fault is None:
            return handler
        inner = handler.unary_unary

        def faulty(request: Any, context: grpc.ServicerContext) -> Any:
            self._apply(fault, context)
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            faulty,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _apply(self, fault: Fault, context: grpc.ServicerContext) -> None:
        rule = fault.rule
        if rule.action == "exit":
            os._exit(EXIT_CODE)
        if rule.action == "error":
            context.abort(rule.code or grpc.StatusCode.UNKNOWN, fault.message)
        if rule.action == "delay":
            time.sleep(rule.seconds)
            return
        done = threading.Event()
        context.add_callback(done.set)  # fires when the call is cancelled or the server stops
        while not done.wait(0.05) and context.is_active() and not self._plan.released:
            pass
        context.abort(grpc.StatusCode.CANCELLED, fault.message)


class FaultRpcError(grpc.RpcError, grpc.Call):
    """What a client-side fault raises: looks like an agent's error status to the caller."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> tuple:
        return ()

    def trailing_metadata(self) -> tuple:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:  # no deadline: grpc's own answer is None
        return None  # type: ignore[return-value]

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class _ClientFaults(grpc.UnaryUnaryClientInterceptor):
    """Same faults, client side: "exit" raises UNAVAILABLE as if the agent had died;
    "hang" blocks until the call's deadline (then DEADLINE_EXCEEDED) or plan.release()."""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        fault = self._plan.next_fault(_rpc_name(client_call_details.method))
        if fault is None:
            return continuation(client_call_details, request)
        rule, timeout = fault.rule, client_call_details.timeout
        if rule.action == "error":
            raise FaultRpcError(rule.code or grpc.StatusCode.UNKNOWN, fault.message)
        if rule.action == "exit":
            raise FaultRpcError(grpc.StatusCode.UNAVAILABLE, f"{fault.message} (agent exited)")
        wait = rule.seconds if rule.action == "delay" else None
        if timeout is not None and (wait is None or wait >= timeout):
            self._plan.wait_released(timeout)
            raise FaultRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, fault.message)
        if wait is None:
            self._plan.wait_released(None)
            raise FaultRpcError(grpc.StatusCode.CANCELLED, fault.message)
        time.sleep(wait)
        remaining = None if timeout is None else timeout - wait
        return continuation(_with_timeout(client_call_details, remaining), request)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def _with_timeout(details: grpc.ClientCallDetails, timeout: float | None) -> grpc.ClientCallDetails:
    return _CallDetails(details.method, timeout, details.metadata, details.credentials,
                        details.wait_for_ready, details.compression)
