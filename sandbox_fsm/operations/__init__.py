"""Every operation the runtime runs, by name, so recovery can rebuild one from the log."""

from __future__ import annotations

from ..names import Op
from ..saga import Operation, Step, step_names
from ..spec import ContainerConfig, Mount
from . import container, guest, sandbox
from .sandbox import RELEASE_LOST

_FIXED: dict[str, Operation] = {op.name: op for op in (
    sandbox.CREATE, sandbox.START, sandbox.STOP, sandbox.DELETE, RELEASE_LOST,
    container.START, container.STOP, container.DELETE, container.EXEC, container.KILL,
    *guest.SANDBOX_OPERATIONS, *guest.CONTAINER_OPERATIONS)}


def operation_for(name: str, params: dict) -> Operation:
    """The operation as it was when `OperationStarted` recorded `name` and `params`."""
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

    create_container is shown with one volume (its `mount_volume` step repeats per volume);
    start/stop_sandbox without their optional network and tracing steps.
    """
    sample = container.create(ContainerConfig(id="c", mounts=(Mount("/src", "/dst"),)))
    return {op.name: step_names(op) for op in (*_FIXED.values(), sample)}


__all__ = ["Operation", "Step", "fixed_operations", "operation_for", "steps"]
