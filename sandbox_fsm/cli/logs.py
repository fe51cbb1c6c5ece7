"""`sbx logs SANDBOX [--console]`: what the sandbox's guest wrote, while its dir exists."""

from __future__ import annotations

import argparse
import shutil
import sys

from ..errors import NotFound
from . import context


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("logs", parents=[common], help="a sandbox's guest output",
                       description="Print the guest agent's log, or with --console the VM's "
                       "serial console (qemu driver: kernel messages, the init's phases, "
                       "the agent), from the sandbox's log dir (gone once it is deleted).")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--console", action="store_true", help="the VM's serial console")
    p.set_defaults(func=cmd_logs)


def cmd_logs(args: argparse.Namespace) -> int:
    from ..host.layout import SandboxLayout
    with context.reader(args) as repo:
        context.need(repo, args.id, args).state(args.id)  # NotFound for an unknown sandbox
    log_dir = SandboxLayout(args.runtime_dir, args.id).log_dir
    name = "console.log" if args.console else "guest.log"
    path = log_dir / name
    if args.console and not path.exists():
        raise NotFound(f"sandbox {args.id!r} has no console log at {path} (only the qemu "
                       "driver has a console; a deleted sandbox keeps none)")
    if not path.exists():
        raise NotFound(f"sandbox {args.id!r} has no guest log at {path}")
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.flush()
    return 0
