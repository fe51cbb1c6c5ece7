"""runc's global options, so `sbx` can stand where OCI clients call `runc`.

containerd's shim and dockerd call `RUNTIME --root DIR --log BUNDLE/log.json --log-format
json VERB ...` and read a failed call's reason from the `--log` file only, one JSON object
per line with `level`, `msg` and `time` (as runc's logrus writes it). A client's `--root`
is where that client's containers live: it maps onto a state dir and a runtime dir of
ours below it, so two clients with different roots never see each other's containers.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime

ROOT_SUBDIR = ".sbx"   # ids start with a letter or digit: no container can be named so


class UsageError(Exception):
    """A command line argparse refused (exit 2), raised so `main` can log it."""


def add_globals(parser: argparse.ArgumentParser, default: object) -> None:
    """runc's global options; `default` is None on the top parser, SUPPRESS on the copies
    each verb accepts after its name."""
    parser.add_argument("--root", default=default, metavar="DIR",
                        help="runc's root: keep this client's containers below DIR")
    parser.add_argument("--log", default=default, metavar="FILE",
                        help="also append errors to FILE (as runc does)")
    parser.add_argument("--log-format", default=default, choices=("text", "json"),
                        help="format of --log lines (default text)")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        default=False if default is None else default,
                        help="accepted for runc compatibility (cgroups are the guest's)")


def resolve_dirs(args: argparse.Namespace, defaults: tuple[str, str]) -> None:
    """--state-dir/--runtime-dir when given, else below --root, else the defaults."""
    root = getattr(args, "root", None)
    below = os.path.join(os.path.abspath(root), ROOT_SUBDIR) if root else None
    if getattr(args, "state_dir", None) is None:
        args.state_dir = below or defaults[0]
    if getattr(args, "runtime_dir", None) is None:
        args.runtime_dir = os.path.join(below, "run") if below else defaults[1]


def log_error(args: argparse.Namespace | None, message: str) -> None:
    """Append `message` to --log as runc's logger would; a log we cannot write is skipped
    (the message still goes to stderr)."""
    path = getattr(args, "log", None)
    if not path:
        return
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if getattr(args, "log_format", None) == "json":
        line = json.dumps({"level": "error", "msg": message, "time": now})
    else:
        line = f"time={json.dumps(now)} level=error msg={json.dumps(message)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    with open(fd, "w", encoding="utf-8") as f:
        f.write(line + "\n")


def log_of(argv: list[str]) -> argparse.Namespace:
    """--log and --log-format from a command line argparse refused, to log the refusal."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--log")
    pre.add_argument("--log-format")
    return pre.parse_known_args(argv)[0]
