"""`python -m sandbox_fsm.shim ...`: one shim (see the package docstring).

Started by `sbx create`/`sbx exec` (shim/launch.py) with the process's stdio as fds 0/1/2;
exits with the process's status. Its own diagnostics go to `--log`, never to the client's
streams.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Runtime


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sbx-shim")
    for name in ("--state-dir", "--runtime-dir", "--sandbox", "--container", "--exec-id",
                 "--log"):
        p.add_argument(name, required=True)
    p.add_argument("--terminal", action="store_true")
    p.add_argument("--start-fd", type=int, default=-1,
                   help="init shims: the start gate (shim/startgate.py)")
    p.add_argument("--config", default="")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s shim %(process)d: %(message)s")
    from .relay import LOST, Relay

    if args.terminal:
        from .console import take_terminal
        take_terminal(0)
    from ..runtime import Runtime

    rt = Runtime.open(args.state_dir, args.runtime_dir, args.config or None, recover=False)
    try:
        client = rt.agent_for(rt.state(args.sandbox))
        relay = Relay(client, args.container, args.exec_id, terminal=args.terminal)
        relay.install_handlers()
        if args.start_fd >= 0:
            from .startgate import wait_released
            wait_released(args.start_fd)
        status = relay.run()
    except Exception:  # noqa: BLE001 - whatever failed, the client must see an exit
        logging.exception("shim failed")
        status = LOST
    logging.info("process %s/%s exited with status %d", args.container, args.exec_id, status)
    record_exit(rt, args, status)
    return status


def record_exit(rt: Runtime, args: argparse.Namespace, status: int) -> None:
    """ProcessExited in the log (exec id "" for the init process), best effort."""
    from eventstore import NewEvent

    from ..names import Ev

    exec_id = "" if args.exec_id == args.container else args.exec_id
    try:
        rt.record_fact(args.sandbox, NewEvent(Ev.PROCESS_EXITED, {
            "container": args.container, "exec_id": exec_id, "status": status}), attempts=25)
    except Exception:  # noqa: BLE001 - the exit status still reaches the client
        logging.exception("recording the exit")
    finally:
        rt.close()


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    logging.shutdown()
    os._exit(code)
