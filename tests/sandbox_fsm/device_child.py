"""Run part of a lifecycle on a container whose rootfs is an ext4 image, in a fresh
process, so `SBX_CRASH_AT` can SIGKILL it at a device step.

Usage: python device_child.py STATE_DIR RUN_DIR IMAGE OPS   (OPS: comma-separated LIFECYCLE)
"""

from __future__ import annotations

import sys
from pathlib import Path

import crash_child

from sandbox_fsm import ContainerConfig, Runtime

SANDBOX, CONTAINER = crash_child.SANDBOX, crash_child.CONTAINER
LIFECYCLE = ("create_sandbox", "start_sandbox", "create_container", "start_container",
             "wait", "stop_container", "delete_container", "stop_sandbox", "delete_sandbox")


def image_container(image: str, script: str = "echo persisted > /written",
                    read_only: bool = False) -> ContainerConfig:
    return ContainerConfig(id=CONTAINER, args=("/bin/sh", "-c", script), rootfs_device={
        "id": "root", "image": image, "fstype": "ext4", "read_only": read_only})


def main(argv: list[str]) -> int:
    state_dir, run_dir, image, ops = argv[:4]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hostcheck import make_config

    with Runtime.open(state_dir, run_dir, make_config("namespaces")) as rt:
        crash_child.run(rt, "", tuple(ops.split(",")), config=image_container(image))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
