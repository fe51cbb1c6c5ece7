"""Every operation the runtime runs, by name, so recovery can rebuild one from the log."""

from __future__ import annotations

from ..errors import InvalidRequest
from ..names import Ev, Op
from ..saga import Operation, Step, step_names
from ..spec import ContainerConfig, Mount
from . import container, guest, processes, sandbox, shim
from .sandbox import RELEASE_DELETED, RELEASE_LOST

_FIXED: dict[str, Operation] = {op.name: op for op in (
    sandbox.CREATE, sandbox.START, sandbox.STOP, sandbox.DELETE, RELEASE_LOST, RELEASE_DELETED,
    container.START, container.STOP, container.DELETE, processes.EXEC, processes.KILL,
    *guest.SANDBOX_OPERATIONS, *guest.CONTAINER_OPERATIONS,
    shim.START, shim.STOP, shim.RELEASE_LOST)}


# Guest reads were one-step operations in older logs (they are plain calls now); one left
# open by a crash is rolled back by recovery, with nothing to undo.
_OLD_READS = {Op.STATS_CONTAINER: ("read_stats", Ev.STATS_READ),
              Op.LIST_PROCESSES: ("list_processes", Ev.PROCESSES_LISTED),
              Op.GUEST_DETAILS: ("get_guest_details", Ev.GUEST_DETAILS_READ),
              Op.LIST_INTERFACES: ("list_interfaces", Ev.INTERFACES_LISTED),
              Op.LIST_ROUTES: ("list_routes", Ev.ROUTES_LISTED)}


def _never_rerun(ctx: object, args: dict) -> dict:
    raise InvalidRequest("a guest read from an older log is never run again")


def operation_for(name: str, params: dict) -> Operation:
    """The operation as it was when `OperationStarted` recorded `name` and `params`."""
    if name in _OLD_READS:
        step, event = _OLD_READS[name]
        return Operation(name, None, (Step(step, event, _never_rerun),))
    if name == Op.CREATE_CONTAINER:
        return container.create(ContainerConfig.from_dict(params["config"]))
    if name == Op.START_SANDBOX:
        return sandbox.start(params)
    if name == Op.STOP_SANDBOX:
        return sandbox.stop(params)
    return _FIXED[name]


def fixed_operations() -> list[Operation]:
    """Every operation whose steps do not depend on its params."""
    return list(_FIXED.values())


def steps() -> dict[str, list[str]]:
    """Every operation with its ordered step names, compensations (`<step>.undo`) last.

    Every step that can run is listed: create_container with one volume (its
    `mount_volume` step repeats per volume), start/stop_sandbox with their optional
    network and tracing steps (they run when the sandbox has a network and the runtime
    dynamic tracing).
    """
    every = {"network": True, "tracing": True}
    samples = (container.create(ContainerConfig(id="c", mounts=(Mount("/src", "/dst"),))),
               sandbox.start(every), sandbox.stop(every))
    return {op.name: step_names(op) for op in (*_FIXED.values(), *samples)}


__all__ = ["Operation", "Step", "fixed_operations", "operation_for", "steps"]
