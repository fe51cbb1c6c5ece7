"""The lifecycle machine: which trigger may fire from which state, and where it leads.

The machine decides what is allowed; the log decides what happened. Sandboxes and
containers share one lifecycle, so one machine (built once: building costs ~0.5 ms)
serves both. It holds every state the log can put either in, with the edges callers
fire (`create` ... `delete`) and the two the runtime itself takes: `fail` (the saga, when
a compensation or a teardown could not finish) and `lost` (recovery, when the guest died).
`target` asks it through `transitions`' own queries; no model is ever attached, so
answering needs no lock and recovering many sandboxes builds nothing.
"""

from __future__ import annotations

from transitions import Machine

from .errors import IllegalTransition
from .names import State, Trigger

STATES: list[str] = [s.value for s in State]

_LIVE = [State.CREATED, State.RUNNING, State.PAUSED]
# (trigger, sources, dest): plain strings for `transitions`, which would treat Enum
# members as named states of their own.
_EDGES: list[tuple[Trigger, list[State], State]] = [
    (Trigger.CREATE, [State.NEW, State.DELETED], State.CREATED),  # ids are reusable
    (Trigger.START, [State.CREATED], State.RUNNING),
    (Trigger.PAUSE, [State.RUNNING], State.PAUSED),
    (Trigger.RESUME, [State.PAUSED], State.RUNNING),
    (Trigger.STOP, [*_LIVE, State.FAILED], State.STOPPED),
    (Trigger.DELETE, [State.CREATED, State.STOPPED, State.FAILED], State.DELETED),
    (Trigger.FAIL, [State.NEW, *_LIVE, State.STOPPED, State.DELETED], State.FAILED),
    (Trigger.LOSE, [*_LIVE, State.FAILED, State.STOPPED], State.STOPPED),
]
TRANSITIONS: list[dict[str, str | list[str]]] = [
    {"trigger": t.value, "source": [s.value for s in sources], "dest": dest.value}
    for t, sources, dest in _EDGES]

# Triggers only the runtime fires; never offered to a caller.
INTERNAL = frozenset({Trigger.FAIL.value, Trigger.LOSE.value})


class Lifecycle:
    """The machine of one kind (sandbox or container) and the questions asked of it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.machine = Machine(model=None, states=STATES, transitions=TRANSITIONS,
                               initial=State.NEW.value, auto_transitions=False,
                               ignore_invalid_triggers=False)

    def may_fire(self, state: str, trigger: str) -> bool:
        # plain strings: `transitions` reads an Enum member as its *name*
        state, trigger = str(state), str(trigger)
        return state in STATES and bool(self.machine.get_transitions(trigger, source=state))

    def edges(self) -> list[tuple[str, str, str]]:
        """(source, trigger, dest) of every transition, in the order they were declared."""
        return [(t.source, trigger, str(t.dest)) for trigger in self.machine.events
                for t in self.machine.get_transitions(trigger)]

    def target(self, state: str, trigger: str, *, what: str) -> str:
        """Where `trigger` leads from `state`; IllegalTransition naming what is allowed."""
        state, trigger = str(state), str(trigger)
        if self.may_fire(state, trigger):
            dest = self.machine.get_transitions(trigger, source=state)[0].dest
            return str(dest)
        allowed = sorted(t for t in self.machine.get_triggers(state) if t not in INTERNAL) \
            if state in STATES else []
        raise IllegalTransition(f"cannot {trigger} {what}: it is {state}"
                                + (f" (allowed: {', '.join(allowed)})" if allowed else ""))


SANDBOX = Lifecycle("sandbox")
CONTAINER = Lifecycle("container")
KINDS = {"sandbox": SANDBOX, "container": CONTAINER}
