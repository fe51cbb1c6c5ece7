"""Run one whole lifecycle in a fresh process, so `SBX_CRASH_AT` can SIGKILL it mid-step.

Usage: python crash_child.py STATE_DIR RUN_DIR DRIVER VOLUME_DIR
Exits 0 when the lifecycle finished (the knob never fired); dies by SIGKILL otherwise.
The parent test reopens the runtime, which recovers.
"""

from __future__ import annotations

import sys

from sandbox_fsm import ContainerConfig, Mount, Runtime, SandboxConfig

SANDBOX = "sbx"
CONTAINER = "c1"
LIFECYCLE = ("create_sandbox", "start_sandbox", "create_container", "start_container",
             "stop_container", "delete_container", "stop_sandbox", "delete_sandbox")


def container_config(volume: str) -> ContainerConfig:
    return ContainerConfig(id=CONTAINER, args=("sleep", "60"),
                           mounts=(Mount(volume, "/data"),))


def run(rt: Runtime, volume: str, ops: tuple[str, ...] = LIFECYCLE) -> None:
    """Run `ops` of the lifecycle, in order, on sandbox SANDBOX / container CONTAINER."""
    calls = {
        "create_sandbox": lambda: rt.create_sandbox(SandboxConfig(id=SANDBOX)),
        "start_sandbox": lambda: rt.start_sandbox(SANDBOX),
        "create_container": lambda: rt.create_container(SANDBOX, container_config(volume)),
        "start_container": lambda: rt.start_container(SANDBOX, CONTAINER),
        "stop_container": lambda: rt.stop_container(SANDBOX, CONTAINER),
        "delete_container": lambda: rt.delete_container(SANDBOX, CONTAINER),
        "stop_sandbox": lambda: rt.stop_sandbox(SANDBOX),
        "delete_sandbox": lambda: rt.delete_sandbox(SANDBOX),
    }
    for op in ops:
        calls[op]()


def main(argv: list[str]) -> int:
    state_dir, run_dir, driver, volume = argv
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from conftest import make_config

    with Runtime.open(state_dir, run_dir, make_config(driver), recover=False) as rt:
        run(rt, volume)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
