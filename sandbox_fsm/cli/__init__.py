"""`sbx`: a thin command line over the sandbox_fsm Python API (see docs/cli.md).

Exit codes: 0 ok, 1 operation failed (rolled back), 2 usage or bad input, 3 conflict,
4 not found; `sbx run` and `sbx exec` exit with the command's own status.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from eventstore import EventStoreError, StoreCorrupted

from ..errors import OperationFailed, SandboxError
from . import (
    context,
    fleet,
    guestimage,
    history,
    logs,
    oci,
    oci_extras,
    oci_globals,
    report,
    run,
    trace,
)

OK, FAILED, USAGE = 0, 1, 2
HOST_REFUSALS = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM)
"""What the host can refuse us (read-only or full file system): a failure, not a bug."""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit 2, like every other error of `sbx`."""

    def error(self, message: str) -> NoReturn:
        # raised, not exited: `main` also writes it to runc's --log (cli/oci_globals.py)
        raise oci_globals.UsageError(f"sbx: error: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    state_dir, runtime_dir = context.default_dirs()
    # Global options are accepted before and after the command; the subcommands' copies
    # default to SUPPRESS so they do not overwrite what was given before the command.
    common = OneLineParser(add_help=False)
    top = OneLineParser(
        prog="sbx", description="Crash-safe lifecycle of VM-style sandboxes, with an audit "
        "log. Exit codes: 0 ok, 1 failed (rolled back), 2 bad input, 3 conflict, "
        "4 not found.")
    for parser, suppress in ((top, False), (common, True)):
        def default(value: object, suppress: bool = suppress) -> object:
            return argparse.SUPPRESS if suppress else value
        parser.add_argument("--state-dir", default=default(None),
                            help=f"where the event log lives (default {state_dir})")
        parser.add_argument("--runtime-dir", default=default(None),
                            help=f"sockets, mounts and sandbox dirs (default {runtime_dir})")
        parser.add_argument("--config", default=default(None), metavar="TOML",
                            help="runtime configuration file")
        parser.add_argument("--json", action="store_true", default=default(False),
                            help="machine-readable output")
        parser.add_argument("--debug", action="store_true", default=default(False),
                            help="log to stderr; tracebacks for unexpected errors")
        oci_globals.add_globals(parser, default(None))
    sub = top.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    run.register(sub, common)
    oci.register(sub, common)
    oci_extras.register(sub, common)
    history.register(sub, common)
    report.register(sub, common)
    guestimage.register(sub, common)
    trace.register(sub, common)
    fleet.register(sub, common)
    logs.register(sub, common)
    agent = sub.add_parser("agent", help="the reference guest agent")
    agent_sub = agent.add_subparsers(dest="agent_cmd", metavar="serve", required=True)
    serve = agent_sub.add_parser("serve", help="run the guest agent (args: see --help)",
                                 add_help=False)
    serve.set_defaults(func=cmd_agent_serve)
    return top


def cmd_agent_serve(args: argparse.Namespace) -> int:
    from agent_io.guest.__main__ import main as agent_main
    return agent_main(args.agent_args)


def explain(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line for stderr) for an error that reached the top."""
    from ..host import MountError  # here, not at the top: the read verbs never need it
    if isinstance(exc, OperationFailed) and isinstance(exc.cause, MountError) \
            and exc.cause.errno in (errno.EPERM, errno.EACCES):
        return exc.exit_code, f"mounting needs root (CAP_SYS_ADMIN); run as root ({exc})"
    if isinstance(exc, SandboxError):   # config errors included (exit 2)
        return exc.exit_code, str(exc)
    if isinstance(exc, StoreCorrupted):
        return FAILED, f"the event log is damaged: {exc}"
    if isinstance(exc, EventStoreError):
        return FAILED, str(exc)
    if isinstance(exc, OSError) and exc.errno in HOST_REFUSALS:
        return FAILED, f"{exc.strerror}: {exc.filename!r}" if exc.filename else str(exc)
    return FAILED, f"unexpected {type(exc).__name__}: {exc}"


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]
          ) -> tuple[argparse.Namespace, list[str]]:
    """For `run` and `exec`, everything after the first `--` is the command, so options
    may come after the id (`sbx exec ID -u 1000 -- CMD`); other commands parse as is."""
    if "--" in argv:
        cut = list(argv).index("--")
        args, rest = parser.parse_known_args(argv[:cut])
        if getattr(args, "command", None) == []:
            args.command = list(argv[cut + 1:])
            return args, rest
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, rest = parse(parser, sys.argv[1:] if argv is None else argv)
        if args.func is cmd_agent_serve:
            args.agent_args = rest          # everything after `agent serve` is the agent's
        elif rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    except oci_globals.UsageError as exc:
        print(exc, file=sys.stderr)
        oci_globals.log_error(oci_globals.log_of(list(sys.argv[1:] if argv is None else argv)),
                              str(exc))
        return USAGE
    oci_globals.resolve_dirs(args, context.default_dirs())
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="sbx: %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()       # the reader went away (`sbx log | head`): not an error
        return OK
    except Exception as exc:  # noqa: BLE001 - the top: one line, never a traceback
        code, line = explain(exc)
        if args.debug:
            traceback.print_exc()
        print(f"sbx: error: {line}", file=sys.stderr)
        oci_globals.log_error(args, line)
        return code
