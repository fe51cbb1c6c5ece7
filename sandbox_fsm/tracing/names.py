"""Span names: the seed's where it traced the same work, ours elsewhere.

Kata v1 (kata-containers/runtime, virtcontainers) opened opentracing spans named after
its functions: `createSandbox`, `startSandbox`, `stopSandbox`, `deleteSandbox`,
`createContainer`, `startContainer`, `stopContainer`, `deleteContainer`, `pauseSandbox`,
`resumeSandbox`, `kill`, `exec` (api.go / sandbox.go / container.go / kata_agent.go), and
inside them `startVM`, `stopVM`, `startProxy`, `check`, `createNetwork`,
`bindMountContainerRootfs`, `unmountHostMounts`, `waitProcess`. A trace from our log uses
those names so dashboards built for Kata's traces keep working; work the seed did not
trace keeps our operation or step name. The `sbx.operation` / `sbx.step` attributes always
carry ours.
"""

from __future__ import annotations

from ..names import Op

OPERATIONS = {
    Op.CREATE_SANDBOX: "createSandbox",
    Op.START_SANDBOX: "startSandbox",
    Op.STOP_SANDBOX: "stopSandbox",
    Op.DELETE_SANDBOX: "deleteSandbox",
    Op.PAUSE_SANDBOX: "pauseSandbox",
    Op.RESUME_SANDBOX: "resumeSandbox",
    Op.CREATE_CONTAINER: "createContainer",
    Op.START_CONTAINER: "startContainer",
    Op.STOP_CONTAINER: "stopContainer",
    Op.DELETE_CONTAINER: "deleteContainer",
    Op.KILL: "kill",
    Op.EXEC: "exec",
}

STEPS = {
    "start_vm": "startVM",
    "stop_vm": "stopVM",
    "start_proxy": "startProxy",
    "check_agent": "check",
    "setup_network": "createNetwork",
    "mount_rootfs": "bindMountContainerRootfs",
    "unmount_container_mounts": "unmountHostMounts",
}


def operation_span(operation: str) -> str:
    return OPERATIONS.get(operation, operation)


def step_span(step: str) -> str:
    return STEPS.get(step, step)
