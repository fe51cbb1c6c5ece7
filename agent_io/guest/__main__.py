"""python -m agent_io.guest --listen unix:PATH --guest-dir DIR --shared-dir DIR ..."""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import sys
from pathlib import Path

from agent_io.guest import janitor, namespaces, server
from agent_io.guest.launcher import LauncherConfig
from agent_io.guest.paths import PRIVATE_DIR

# A static init is pid 1 of each container (as `docker run --init`): the command gets
# the signals a container's pid 1 would ignore, and zombies are reaped.
DEFAULT_INIT = shutil.which("tini-static") or ""


def _launcher(args: argparse.Namespace) -> LauncherConfig:
    runtime = shutil.which(args.oci_runtime)
    if runtime is None:
        raise ValueError(f"--oci-runtime {args.oci_runtime!r}: not found (install runc)")
    init = Path(args.container_init) if args.container_init else None
    if init is not None and not init.is_file():
        raise ValueError(f"--container-init {args.container_init!r}: not a file")
    return LauncherConfig(runtime=runtime, init=init, token=args.cgroup_token)


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
    p.add_argument("--oci-runtime", default="runc",
                   help="runc, or a runtime with its command line (crun); default: runc")
    p.add_argument("--container-init", default=DEFAULT_INIT,
                   help="static init run as each container's pid 1 ('' for none; "
                        "default: tini-static when installed)")
    p.add_argument(namespaces.INNER_FLAG, action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cgroup-token", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    debug = "agent.log=debug" in args.kernel_params.split()
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="guest-agent: %(message)s")
    try:
        if not args.namespaced:
            args.cgroup_token = secrets.token_hex(6)
        launcher = _launcher(args)
        if not args.namespaced and args.guest_dir.is_dir():  # serve() refuses a missing dir
            # The outermost agent process holds the janitor's pipe open until it dies.
            janitor.start(args.cgroup_token, args.guest_dir, PRIVATE_DIR)
        if args.namespaces and not args.namespaced:
            return namespaces.run_outer([*(a for a in argv if a != "--namespaces"),
                                         "--cgroup-token", args.cgroup_token])
        return server.serve(args.listen, args.guest_dir, args.shared_dir, args.faults,
                            args.namespaced, launcher, kernel_params=args.kernel_params,
                            vm_port=args.vm_port)
    except ValueError as exc:
        print(f"agent_io.guest: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
