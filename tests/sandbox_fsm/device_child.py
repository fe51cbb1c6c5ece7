"""Run part of a lifecycle on a container whose rootfs is an ext4 image, in a fresh
process, so `SBX_CRASH_AT` can SIGKILL it at a device step.

Usage: python device_child.py STATE_DIR RUN_DIR IMAGE OPS   (OPS: comma-separated LIFECYCLE)
"""

from __future__ import annotations

import sys
from pathlib import Path

from sandbox_fsm import ContainerConfig, Runtime, SandboxConfig

SANDBOX, CONTAINER = "sbx", "c1"
LIFECYCLE = ("create_sandbox", "start_sandbox", "create_container", "start_container",
             "wait", "stop_container", "delete_container", "stop_sandbox", "delete_sandbox")


def image_container(image: str, script: str = "echo persisted > /written") -> ContainerConfig:
    return ContainerConfig(id=CONTAINER, args=("/bin/sh", "-c", script), rootfs_device={
        "id": "root", "image": image, "fstype": "ext4"})


def run(rt: Runtime, image: str, ops: tuple[str, ...]) -> None:
    calls = {
        "create_sandbox": lambda: rt.create_sandbox(SandboxConfig(id=SANDBOX)),
        "start_sandbox": lambda: rt.start_sandbox(SANDBOX),
        "create_container": lambda: rt.create_container(SANDBOX, image_container(image)),
        "start_container": lambda: rt.start_container(SANDBOX, CONTAINER),
        "wait": lambda: rt.wait(SANDBOX, CONTAINER),
        "stop_container": lambda: rt.stop_container(SANDBOX, CONTAINER),
        "delete_container": lambda: rt.delete_container(SANDBOX, CONTAINER),
        "stop_sandbox": lambda: rt.stop_sandbox(SANDBOX),
        "delete_sandbox": lambda: rt.delete_sandbox(SANDBOX),
    }
    for op in ops:
        calls[op]()


def main(argv: list[str]) -> int:
    state_dir, run_dir, image, ops = argv[:4]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hostcheck import make_config

    with Runtime.open(state_dir, run_dir, make_config("namespaces")) as rt:
        run(rt, image, tuple(ops.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
