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

OPERATIONS = {
    "create_sandbox": "createSandbox",
    "start_sandbox": "startSandbox",
    "stop_sandbox": "stopSandbox",
    "delete_sandbox": "deleteSandbox",
    "pause_sandbox": "pauseSandbox",
    "resume_sandbox": "resumeSandbox",
    "create_container": "createContainer",
    "start_container": "startContainer",
    "stop_container": "stopContainer",
    "delete_container": "deleteContainer",
    "kill": "kill",
    "exec": "exec",
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
