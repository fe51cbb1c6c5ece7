"""The lifecycle machines: which trigger is allowed from which state.

The machine decides what is allowed; the log decides what happened. Machines are built
once per kind (building one costs ~0.5 ms) and a model is attached only for a sandbox
being operated on, then detached: recovery of many sandboxes builds none.
"""

from __future__ import annotations

import threading

from transitions import Machine, MachineError

from .errors import IllegalTransition

STATES = ["new", "created", "running", "paused", "stopped", "deleted", "failed"]

SANDBOX_TRANSITIONS = [
    {"trigger": "create", "source": ["new", "deleted"], "dest": "created"},  # ids are reusable
    {"trigger": "start", "source": "created", "dest": "running"},
    {"trigger": "pause", "source": "running", "dest": "paused"},
    {"trigger": "resume", "source": "paused", "dest": "running"},
    {"trigger": "stop", "source": ["created", "running", "paused", "failed"], "dest": "stopped"},
    {"trigger": "delete", "source": ["created", "stopped", "failed"], "dest": "deleted"},
]

CONTAINER_TRANSITIONS = [
    {"trigger": "create", "source": ["new", "deleted"], "dest": "created"},
    {"trigger": "start", "source": "created", "dest": "running"},
    {"trigger": "pause", "source": "running", "dest": "paused"},
    {"trigger": "resume", "source": "paused", "dest": "running"},
    {"trigger": "stop", "source": ["created", "running", "paused", "failed"], "dest": "stopped"},
    {"trigger": "delete", "source": ["created", "stopped", "failed"], "dest": "deleted"},
]

KINDS = {"sandbox": SANDBOX_TRANSITIONS, "container": CONTAINER_TRANSITIONS}


class _Model:
    """A throwaway model: the machine holds the state only while one trigger is checked."""

    state: str


class Lifecycle:
    """One machine per kind; `target(state, trigger)` asks it where a trigger leads."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.machine = Machine(model=None, states=STATES, transitions=KINDS[kind],
                               initial="new", auto_transitions=False,
                               ignore_invalid_triggers=False)
        self._lock = threading.Lock()

    def target(self, state: str, trigger: str, *, what: str) -> str:
        """Fire `trigger` on a model in `state`; return the destination or raise."""
        model = _Model()
        with self._lock:
            self.machine.add_model(model, initial=state)
            try:
                getattr(model, trigger)()
                return model.state
            except (MachineError, AttributeError) as exc:
                allowed = sorted({t["trigger"] for t in KINDS[self.kind]
                                  if state in _sources(t)})
                raise IllegalTransition(
                    f"cannot {trigger} {what}: it is {state}"
                    + (f" (allowed: {', '.join(allowed)})" if allowed else "")) from exc
            finally:
                self.machine.remove_model(model)


def _sources(transition: dict) -> list[str]:
    src = transition["source"]
    return src if isinstance(src, list) else [src]


SANDBOX = Lifecycle("sandbox")
CONTAINER = Lifecycle("container")
