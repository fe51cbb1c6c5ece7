"""Run one whole lifecycle in a fresh process, so `SBX_CRASH_AT` can SIGKILL it mid-step.

Usage: python crash_child.py STATE_DIR RUN_DIR DRIVER VOLUME_DIR [SANDBOX [OPS|recover]]
OPS is a comma-separated part of LIFECYCLE (default: all of it); `recover` only opens the
runtime, which recovers (a knob on a `.undo` step then crashes the recovery itself).
Exits 0 when it finished (the knob never fired); dies by SIGKILL otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sandbox_fsm import ContainerConfig, Mount, Runtime, SandboxConfig

SANDBOX = "sbx"
CONTAINER = "c1"
LIFECYCLE = ("create_sandbox", "start_sandbox", "create_container", "start_container",
             "stop_container", "delete_container", "stop_sandbox", "delete_sandbox")


def container_config(volume: str) -> ContainerConfig:
    return ContainerConfig(id=CONTAINER, args=("sleep", "60"),
                           mounts=(Mount(volume, "/data"),))


def run(rt: Runtime, volume: str, ops: tuple[str, ...] = LIFECYCLE,
        sandbox: str = SANDBOX) -> None:
    """Run `ops` of the lifecycle, in order, on `sandbox` / container CONTAINER."""
    calls = {
        "create_sandbox": lambda: rt.create_sandbox(SandboxConfig(id=sandbox)),
        "start_sandbox": lambda: rt.start_sandbox(sandbox),
        "create_container": lambda: rt.create_container(sandbox, container_config(volume)),
        "start_container": lambda: rt.start_container(sandbox, CONTAINER),
        "stop_container": lambda: rt.stop_container(sandbox, CONTAINER),
        "delete_container": lambda: rt.delete_container(sandbox, CONTAINER),
        "stop_sandbox": lambda: rt.stop_sandbox(sandbox),
        "delete_sandbox": lambda: rt.delete_sandbox(sandbox),
    }
    for op in ops:
        calls[op]()


def main(argv: list[str]) -> int:
    state_dir, run_dir, driver, volume = argv[:4]
    sandbox = argv[4] if len(argv) > 4 else SANDBOX
    what = argv[5] if len(argv) > 5 else ",".join(LIFECYCLE)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hostcheck import make_config

    recover = what == "recover"
    with Runtime.open(state_dir, run_dir, make_config(driver), recover=recover) as rt:
        if not recover:
            run(rt, volume, tuple(what.split(",")), sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
