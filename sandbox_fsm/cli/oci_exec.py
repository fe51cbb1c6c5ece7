"""`sbx exec` as runc has it: `--process process.json`, `--detach`, `--pid-file`,
`--console-socket`; the process gets a shim of its own (cli/oci_shims.py), whose pid the
client reaps. Without those options `sbx exec ID -- CMD` stays attached (cli/run.py)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..errors import InvalidRequest
from . import context, oci_shims


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--process", "-p", metavar="FILE",
                   help="the OCI process (JSON) to run instead of CMD ('-': stdin)")
    p.add_argument("--detach", "-d", action="store_true",
                   help="leave the process to its shim; return at once")
    p.add_argument("--pid-file", metavar="FILE", help="write the shim's pid here")
    p.add_argument("--console-socket", metavar="SOCKET",
                   help="send the terminal's master fd to this unix socket")
    p.add_argument("--cwd", dest="workdir", metavar="DIR", help="same as --workdir")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="accepted; only 0 is supported")


def wants_shim(args: argparse.Namespace) -> bool:
    return bool(args.process or args.detach or args.pid_file or args.console_socket)


def read_json(path: str, option: str) -> Any:
    """The JSON document in file `path` ('-': stdin) given to `option`."""
    try:
        if path == "-":
            with os.fdopen(os.dup(0), encoding="utf-8") as f:
                return json.load(f)
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"{option} {path!r}: cannot read it: {exc}") from None


def read_process(path: str) -> dict[str, Any]:
    """The OCI process object, checked before anything is written."""
    data = read_json(path, "--process")
    args = data.get("args") if isinstance(data, dict) else None
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidRequest(f"--process {path!r}: args must be a non-empty list of strings")
    return data


def process_of(args: argparse.Namespace, command: list[str], env: dict[str, str]
               ) -> dict[str, Any]:
    """--process, else the command line's CMD and options (`env` from its --env), as one
    OCI process."""
    if args.process:
        return read_process(args.process)
    if not command:
        raise InvalidRequest("no command given (usage: sbx exec [options] ID -- CMD, or "
                             "--process FILE)")
    user = args.user or "0:0"
    uid, _, gid = user.partition(":")
    return {"args": command, "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": args.workdir or "/", "terminal": bool(args.tty),
            "user": {"uid": int(uid), "gid": int(gid or 0)}}


def _env(process: dict[str, Any]) -> dict[str, str] | None:
    items = [e for e in process.get("env") or [] if isinstance(e, str) and "=" in e]
    return dict(e.split("=", 1) for e in items) or None


def cmd_exec_shim(args: argparse.Namespace, command: list[str], env: dict[str, str]) -> int:
    """Start the process and its shim; detached: print nothing, return; else wait for the
    shim (our child) and return its status."""
    if args.preserve_fds:
        raise InvalidRequest(f"--preserve-fds {args.preserve_fds}: only 0 is supported")
    process = process_of(args, command, env)
    terminal = bool(process.get("terminal") or args.tty)
    if terminal and not args.console_socket and args.detach:
        raise InvalidRequest("a terminal for a detached process needs --console-socket")
    user = process.get("user") or {}
    with context.writer(args) as rt:
        exec_id = rt.exec(args.id, args.id, list(process["args"]), env=_env(process),
                          cwd=process.get("cwd") or "/",
                          user=f"{user.get('uid', 0)}:{user.get('gid', 0)}", terminal=terminal)
        shim = oci_shims.start_shim(rt, args, args.id, args.id, exec_id, terminal=terminal,
                                    console_socket=args.console_socket)
        oci_shims.write_pid_file(args.pid_file, shim.pid)
    if args.detach:
        return 0
    _, status = os.waitpid(shim.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
