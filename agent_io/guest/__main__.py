"""python -m agent_io.guest --listen unix:PATH --guest-dir DIR --shared-dir DIR ..."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from agent_io.guest import namespaces, server


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m agent_io.guest", description=__doc__)
    p.add_argument("--listen", required=True, help="unix:/abs/path of the socket to serve on")
    p.add_argument("--guest-dir", required=True, type=Path, help="root of guest paths")
    p.add_argument("--shared-dir", required=True, type=Path,
                   help="host dir behind /run/kata-containers/shared/containers/")
    p.add_argument("--faults", help="fault plan JSON (default: $SBX_AGENT_FAULTS)")
    p.add_argument("--kernel-params", default="",
                   help="the guest kernel command line: kept at <guest-dir>/proc/cmdline; "
                        "agent.log=debug turns on debug logging")
    p.add_argument("--vm-port", default="", metavar="NAME",
                   help="inside a VM: serve the host through the virtio-serial port NAME")
    p.add_argument("--namespaces", action="store_true",
                   help="run in new mount, PID, UTS and IPC namespaces (root)")
    p.add_argument(namespaces.INNER_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    debug = "agent.log=debug" in args.kernel_params.split()
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="guest-agent: %(message)s")
    if args.namespaces and not args.namespaced:
        return namespaces.run_outer([a for a in argv if a != "--namespaces"])
    try:
        return server.serve(args.listen, args.guest_dir, args.shared_dir, args.faults,
                            args.namespaced, kernel_params=args.kernel_params,
                            vm_port=args.vm_port)
    except ValueError as exc:
        print(f"agent_io.guest: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
