"""Run one whole lifecycle in a fresh process, so `SBX_CRASH_AT` can SIGKILL it mid-step.

Usage: python crash_child.py STATE_DIR RUN_DIR DRIVER VOLUME_DIR [SANDBOX [OPS|recover]]
OPS is a comma-separated part of LIFECYCLE (default: all of it); `recover` only opens the
runtime, which recovers (a knob on a `.undo` step then crashes the recovery itself).
Exits 0 when it finished (the knob never fired); dies by SIGKILL otherwise.
With SBX_TEST_ALL_STEPS=1 every optional step runs too: the sandbox has a network and
the runtime dynamic tracing (setup_network, start_tracing, stop_tracing).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox_fsm import ContainerConfig, Mount, Runtime, SandboxConfig

SANDBOX = "sbx"
CONTAINER = "c1"
ALL_STEPS_ENV = "SBX_TEST_ALL_STEPS"
NETWORK = {"interfaces": [{"name": "eth0", "addresses": ["10.88.0.2/16"]}],
           "routes": [{"dest": "10.88.0.0/16", "device": "eth0", "scope": 253}]}
LIFECYCLE = ("create_sandbox", "start_sandbox", "create_container", "start_container",
             "stop_container", "delete_container", "stop_sandbox", "delete_sandbox")


def container_config(volume: str) -> ContainerConfig:
    return ContainerConfig(id=CONTAINER, args=("sleep", "60"),
                           mounts=(Mount(volume, "/data"),))


def all_steps() -> bool:
    return os.environ.get(ALL_STEPS_ENV) == "1"


def run(rt: Runtime, volume: str, ops: tuple[str, ...] = LIFECYCLE,
        sandbox: str = SANDBOX, config: ContainerConfig | None = None) -> None:
    """Run `ops` of the lifecycle (and `wait`), in order, on `sandbox` / container CONTAINER
    (`config`, by default `container_config(volume)`)."""
    config = config or container_config(volume)
    network = NETWORK if all_steps() else None
    calls = {
        "create_sandbox": lambda: rt.create_sandbox(SandboxConfig(id=sandbox, network=network)),
        "start_sandbox": lambda: rt.start_sandbox(sandbox),
        "create_container": lambda: rt.create_container(sandbox, config),
        "start_container": lambda: rt.start_container(sandbox, CONTAINER),
        "wait": lambda: rt.wait(sandbox, CONTAINER),
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
    config = make_config(driver, tracing=all_steps())
    with Runtime.open(state_dir, run_dir, config, recover=recover) as rt:
        if not recover:
            run(rt, volume, tuple(what.split(",")), sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
