"""`sbx ship` and `sbx fleet list|audit|verify|export`: the CLI over sandbox_fsm.fleet.

nats-py is imported only when one of these verbs runs, so other verbs start as fast.
Exit codes beyond the common ones: 5 when no NATS server answers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, NotFound
from . import context, history

if TYPE_CHECKING:
    from ..fleet import NatsOptions, ShipStatus


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    nats = argparse.ArgumentParser(add_help=False)
    nats.add_argument("--nats", metavar="URL[,URL...]",
                      help="NATS server(s) (default: [fleet] nats_url of --config)")
    nats.add_argument("--stream", help="JetStream stream (default: [fleet] stream, SBX_EVENTS)")
    nats.add_argument("--creds", metavar="FILE", help="NATS credentials file (JWT + nkey)")
    nats.add_argument("--nkey", metavar="FILE", help="nkey seed file")
    nats.add_argument("--tls-ca", metavar="FILE")
    nats.add_argument("--tls-cert", metavar="FILE")
    nats.add_argument("--tls-key", metavar="FILE")

    p = sub.add_parser("ship", parents=[common, nats],
                       help="ship this host's log to the fleet's JetStream stream")
    p.add_argument("--until-caught-up", action="store_true",
                   help="stop once the log's last event is acknowledged")
    p.add_argument("--host-id", type=host_arg,
                   help="this host's id (default: [fleet] host_id, else the id kept in the "
                   "state dir, created on the first ship)")
    p.add_argument("--max-in-flight", type=int, default=256, metavar="N",
                   help="unacknowledged messages at most (default 256)")
    p.set_defaults(func=cmd_ship)

    fleet = sub.add_parser("fleet", help="every host's history, read from the stream")
    verbs = fleet.add_subparsers(dest="fleet_cmd", metavar="list|audit|verify|export",
                                 required=True)
    p = verbs.add_parser("list", parents=[common, nats], help="every sandbox on every host")
    p.add_argument("--host", type=host_arg, help="only this host")
    p.set_defaults(func=cmd_list)
    p = verbs.add_parser("audit", parents=[common, nats], help="a sandbox's timeline")
    p.add_argument("host", type=host_arg)
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--at", metavar="POSITION|TIME", help="its state at a position or time")
    p.set_defaults(func=cmd_audit)
    p = verbs.add_parser("verify", parents=[common, nats], help="every host's hash chain")
    p.add_argument("--host", type=host_arg, help="only this host")
    p.add_argument("--anchor", action="append", default=[], metavar="HOST=FILE",
                   help="a `sbx checkpoint` taken on HOST to check against (repeatable)")
    p.set_defaults(func=cmd_verify)
    p = verbs.add_parser("export", parents=[common, nats], help="events as JSON lines")
    p.add_argument("--host", type=host_arg, help="only this host")
    p.add_argument("--sandbox", type=context.sandbox_id, metavar="ID")
    p.set_defaults(func=cmd_export)


def host_arg(text: str) -> str:
    """argparse type for host ids: a bad one is a usage error (exit 2)."""
    from ..fleet.hostid import validate_host_id

    try:
        return validate_host_id(text)
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fleet_config(args: argparse.Namespace) -> Any:
    return context.runtime_config(args).fleet


def nats_options(args: argparse.Namespace) -> tuple[NatsOptions, str, Any]:
    """(connection options, stream name, [fleet] config), all checked before connecting."""
    from ..fleet import NatsOptions

    cfg = _fleet_config(args)
    opts = NatsOptions.parse(args.nats or cfg.nats_url, creds=args.creds, nkey_seed=args.nkey,
                             tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key)
    for name in ("creds", "nkey", "tls_ca", "tls_cert", "tls_key"):
        path = getattr(args, name)
        if path and not os.access(path, os.R_OK):
            raise InvalidRequest(f"--{name.replace('_', '-')} {path!r}: not a readable file")
    return opts, args.stream or cfg.stream, cfg


# -- ship -------------------------------------------------------------------------------

def cmd_ship(args: argparse.Namespace) -> int:
    import asyncio  # here, like the fleet package: `sbx list` never loads asyncio

    from eventstore import EventStore

    from ..fleet import Shipper, resolve_host_id, save_host_id

    opts, stream, cfg = nats_options(args)
    if args.max_in_flight < 1:
        raise InvalidRequest("--max-in-flight must be at least 1")
    configured = args.host_id or cfg.host_id
    host_id = resolve_host_id(args.state_dir, configured)
    path = context.events_path(args)
    if not os.path.exists(os.path.join(path, "data.mdb")):
        raise NotFound(f"no event log at {path!r}: nothing to ship")
    with EventStore.open(path, readonly=True) as store:
        shipper = Shipper(store, opts, host_id, stream=stream, replicas=cfg.replicas,
                          max_in_flight=args.max_in_flight, on_status=_status_printer(args))
        status = asyncio.run(_ship(shipper, args.until_caught_up,
                                 lambda: None if configured else save_host_id(args.state_dir,
                                                                              host_id)))
    if not args.json:       # the last line stays: finished on a terminal, added otherwise
        sys.stderr.write("\n" if sys.stderr.isatty() else status.line() + "\n")
    else:
        context.emit_line({"host": status.host, "shipped": status.shipped,
                           "head": status.head, "published": status.published,
                           "duplicates": status.duplicates, "reconnects": status.reconnects})
    return 0


async def _ship(shipper: Any, until_caught_up: bool, started: Any) -> ShipStatus:
    import asyncio

    await shipper.start()      # refused input (URL, credentials, stream) stops here
    started()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await shipper.run(until_caught_up=until_caught_up, stop=stop)


def _status_printer(args: argparse.Namespace) -> Any:
    """On a terminal, one line rewritten in place; otherwise a line when the link changes
    or every 10 s, so a log file does not grow by a line a second."""
    tty = sys.stderr.isatty()
    last = {"at": 0.0, "connected": None}

    def show(status: ShipStatus) -> None:
        now = time.monotonic()
        if args.json or (not tty and status.connected == last["connected"]
                         and now - float(last["at"] or 0) < 10):
            return
        last.update(at=now, connected=status.connected)
        sys.stderr.write(("\r\033[K" if tty else "") + status.line() + ("" if tty else "\n"))
        sys.stderr.flush()
    return show


# -- fleet views ------------------------------------------------------------------------

def _read(args: argparse.Namespace, host: str | None) -> Any:
    import asyncio

    from ..fleet import read_messages

    opts, stream, _ = nats_options(args)
    return asyncio.run(read_messages(opts, stream, host))


def cmd_list(args: argparse.Namespace) -> int:
    from ..fleet import fleet_list, host_events

    rows = fleet_list(host_events(_read(args, args.host).shipped))
    if args.json:
        context.emit_json(rows)
        return 0
    print(context.table(["HOST", "ID", "STATE", "CONTAINERS", "CREATED"], [
        (r["host"], r["id"], r["state"],
         ",".join(f"{c}:{s}" for c, s in r["containers"].items()) or "-", r["created"])
        for r in rows]))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .. import audit
    from ..fleet import host_events, sandbox_streams

    events = host_events(_read(args, args.host).shipped).get(args.host, [])
    stream = sandbox_streams(events).get(args.id)
    if not stream:
        raise NotFound(f"no sandbox {args.id!r} of host {args.host!r} in the stream")
    if args.at is not None:
        state = audit.state_at(stream, audit.parse_at(args.at), args.id)
        if args.json:
            context.emit_json({"at": args.at, **state.to_dict()})
        else:
            print(history.describe_state(state))
        return 0
    rows = audit.timeline(stream)
    if args.json:
        context.emit_json([r.to_dict() for r in rows])
    else:
        print(history.timeline_table(rows, color=sys.stdout.isatty()))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..fleet import FleetVerifyFailed, verify_fleet

    anchors = {}
    for item in args.anchor:
        host, sep, path = item.partition("=")
        if not sep or not host or not path:
            raise InvalidRequest(f"--anchor {item!r}: expected HOST=FILE")
        anchors[host] = history.read_anchor(path)
    read = _read(args, args.host)
    reports = verify_fleet(read.shipped, anchors)
    lines = [f"stream message: {bad}" for bad in read.bad]
    lines += [f.line() for r in reports for f in r.findings]
    if args.json:
        context.emit_json({"ok": not lines, "problems": lines, "hosts": [
            {"host": r.host, "messages": r.messages, "last_position": r.last_position,
             "last_hash": r.last_hash, "ok": r.ok} for r in reports]})
    else:
        for r in reports:
            print(f"host {r.host}: {r.messages} messages, through position {r.last_position}"
                  f" ({r.last_hash[:16]}...): " + ("ok" if r.ok else
                                                   f"{len(r.findings)} problems"))
        for line in lines:
            print(line)
    if lines:
        raise FleetVerifyFailed(f"fleet verification FAILED: {len(lines)} problems; first: "
                                f"{lines[0]}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .. import audit
    from ..fleet import host_events
    from ..repository import stream_of

    for host, events in host_events(_read(args, args.host).shipped).items():
        for event in events:
            if args.sandbox and event.stream != stream_of(args.sandbox):
                continue
            sys.stdout.write(json.dumps({"host": host, **audit.export_record(event)}) + "\n")
    return 0
