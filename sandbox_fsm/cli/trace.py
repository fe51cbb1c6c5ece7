"""`sbx trace export`: the log's operations as OpenTelemetry traces (sandbox_fsm.tracing).

Read-only over the log; OpenTelemetry is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest
from ..repository import STREAM_PREFIX
from . import context
from .history import _open_when_written
from .report import sandboxes

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from ..repository import Repository
    from ..tracing.export import Sender


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("trace", help="OpenTelemetry traces from the log")
    verbs = p.add_subparsers(dest="trace_cmd", metavar="export", required=True)
    e = verbs.add_parser("export", parents=[common],
                         help="send one trace per sandbox to an OTLP/gRPC collector")
    e.add_argument("ids", nargs="*", metavar="SANDBOX", type=context.sandbox_id,
                   help="sandboxes to export (default: every sandbox in the log)")
    e.add_argument("--otlp-endpoint", required=True, metavar="URL",
                   help="the collector, e.g. http://127.0.0.1:4317 (https:// for TLS)")
    e.add_argument("--follow", "-f", action="store_true",
                   help="then keep exporting operations as they complete, until Ctrl-C")
    e.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up on a batch the collector has not accepted by then")
    e.set_defaults(func=cmd_trace_export)


def _chosen(rt: Repository | None, args: argparse.Namespace) -> list[tuple[str, list[Any]]]:
    """The sandboxes to export now; following an empty log waits for the first one."""
    if args.follow and not args.ids and (rt is None or next(
            iter(rt.store.streams(STREAM_PREFIX)), None) is None):
        return []
    return sandboxes(rt, args.ids, args)


def cmd_trace_export(args: argparse.Namespace) -> int:
    from ..tracing import export

    export.endpoint(args.otlp_endpoint)              # a bad URL is refused first
    if args.timeout <= 0:
        raise InvalidRequest(f"--timeout {args.timeout:g}: must be positive")
    if not args.debug:
        export.quiet_exporter_logs()
    res = export.resource(context.events_path(args))
    with context.reader(args) as rt:
        chosen = _chosen(rt, args)
        last = rt.store.last_position() if rt else -1
    sender = export.Sender(args.otlp_endpoint, args.timeout)
    try:
        count = export.export_all(chosen, res, sender.send)
        print(f"exported {sender.sent} spans of {count} sandbox"
              f"{'es' if count != 1 else ''} to {args.otlp_endpoint}", file=sys.stderr)
        if args.follow:
            _follow(args, sender, res, last + 1)
    finally:
        sender.close()
    return 0


def _follow(args: argparse.Namespace, sender: Sender, res: Resource,
            from_position: int) -> None:
    """Until SIGINT/SIGTERM; then the root spans of the sandboxes seen are sent too."""
    from ..tracing import export

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with _open_when_written(context.events_path(args)) as store:
        export.follow(store, set(args.ids) or None, res, sender.send, from_position, stop)
    print(f"exported {sender.sent} spans in all", file=sys.stderr)
