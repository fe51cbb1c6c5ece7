"""Post-mortem commands over the log: audit, log, verify, checkpoint, export, diagram.

All of them open the log read-only, so they run while other processes write and can
never change it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from eventstore import EventStore, EventStoreError, StoreCorrupted

from .. import audit
from ..errors import InvalidRequest, NotFound, SandboxError
from ..names import Ev
from ..repository import stream_of
from . import context

if TYPE_CHECKING:
    from ..state import SandboxState

RED, YELLOW, RESET = "\033[31m", "\033[33m", "\033[0m"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("audit", parents=[common], help="a sandbox's timeline, or its state "
                       "and resource ledger at a point")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--at", metavar="POSITION|TIME",
                   help="fold the log up to a position (int) or an ISO-8601 time")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("log", parents=[common], help="events as they are written")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--type", action="append", dest="types", metavar="T",
                   help="only events of this type (repeatable)")
    p.add_argument("--sandbox", type=context.sandbox_id, metavar="ID",
                   help="only this sandbox's events")
    p.add_argument("--from", dest="from_position", type=int, default=0, metavar="POSITION")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("verify", parents=[common], help="verify the log's hash chain")
    p.add_argument("--anchor", metavar="FILE", help="a `sbx checkpoint` output to check against")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("checkpoint", parents=[common],
                       help="print {position, hash} of the last event (keep it elsewhere)")
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("export", parents=[common], help="every event, every field, as JSON")
    p.add_argument("--format", choices=["jsonl"], default="jsonl")
    p.add_argument("--sandbox", type=context.sandbox_id, metavar="ID",
                   help="only this sandbox's events")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("diagram", parents=[common],
                       help="the lifecycle machine as a Mermaid state diagram")
    p.add_argument("kind", nargs="?", choices=["sandbox", "container"], default="sandbox")
    p.add_argument("--sandbox", type=context.sandbox_id, metavar="ID",
                   help="mark the path this sandbox took")
    p.add_argument("--container", type=context.sandbox_id, metavar="CID",
                   help="with `container`: which container's path (default: the sandbox id)")
    p.set_defaults(func=cmd_diagram)


# -- audit ------------------------------------------------------------------------------

def cmd_audit(args: argparse.Namespace) -> int:
    with context.reader(args) as rt:
        events = context.need(rt, args.id, args).events(args.id)
    if args.at is not None:
        state = audit.state_at(events, audit.parse_at(args.at), args.id)
        if args.json:
            context.emit_json({"at": args.at, **state.to_dict()})
        else:
            print(describe_state(state))
        return 0
    rows = audit.timeline(events)
    if args.json:
        context.emit_json([r.to_dict() for r in rows])
    else:
        print(timeline_table(rows, color=sys.stdout.isatty()))
    return 0


def timeline_table(rows: list[audit.TimelineRow], *, color: bool) -> str:
    lines = context.table(
        ["", "POS", "TIME", "OPERATION", "STEP", "EVENT", "DURATION", "OUTCOME", "DETAIL"],
        [(r.mark, r.position, r.time, r.operation, r.step, r.event,
          "" if r.duration is None else f"{r.duration * 1000:.1f}ms", r.outcome, r.detail)
         for r in rows]).split("\n")
    if not color:
        return "\n".join(lines)
    tint = {"!": RED, "<-": YELLOW}
    return "\n".join([lines[0]] + [tint[r.mark] + line + RESET if r.mark in tint else line
                                   for r, line in zip(rows, lines[1:], strict=True)])


def describe_state(state: SandboxState) -> str:
    out = [f"sandbox {state.id}: {state.state} at position {state.position} "
           f"(stream version {state.version})" + (" LOST" if state.lost else "")]
    if state.operation:
        op = state.operation
        done = [r.step for r in op["records"].values() if r.outcome is not None]
        out.append(f"operation in progress: {op.get('operation')} (op {op.get('op')}); "
                   f"steps done: {', '.join(done) or 'none'}"
                   + ("; compensating" if op.get("compensating") else ""))
    for cid, c in state.containers.items():
        out.append(f"container {cid}: {c.status}"
                   + ("" if c.exit_status is None else f" (exit {c.exit_status})"))
    out.append("resource ledger:" if state.ledger else "resource ledger: empty")
    if state.ledger:
        out.append(context.table(["KEY", "KIND", "DETAIL"], [
            (key, res.get("kind", ""), _resource_detail(res))
            for key, res in sorted(state.ledger.items())]))
    return "\n".join(out)


def _resource_detail(res: dict) -> str:
    return " ".join(f"{k}={res[k]}" for k in ("role", "pid", "start_time", "container", "url")
                    if res.get(k) not in (None, ""))


# -- log ----------------------------------------------------------------------------------

def event_line(event: Any) -> str:
    summary = {k: v for k, v in event.data.items() if k not in ("args", "params", "acquired")}
    return (f"{event.position:>6} {audit.iso(event.recorded_at)} {event.stream} "
            f"v{event.version} {event.type} {json.dumps(summary, default=str)}")


def _show(event: Any, args: argparse.Namespace) -> None:
    if args.types and event.type not in args.types:
        return
    if args.sandbox and event.stream != stream_of(args.sandbox):
        return
    if args.json:
        context.emit_line(audit.export_record(event))
    else:
        sys.stdout.write(event_line(event) + "\n")
        sys.stdout.flush()


def cmd_log(args: argparse.Namespace) -> int:
    path = context.events_path(args)
    if not args.follow:
        with context.reader(args) as rt:
            if args.sandbox:      # as `export --sandbox`: an unknown sandbox is not found
                context.need(rt, args.sandbox, args).state(args.sandbox)
            for event in rt.store.read_all(args.from_position, types=args.types) if rt else ():
                _show(event, args)
        return 0
    stop = threading.Event()
    with _open_when_written(path) as store:
        try:
            for event in store.follow(args.from_position, stop=stop):
                _show(event, args)
        except KeyboardInterrupt:
            stop.set()
    return 0


def _open_when_written(path: str, settle: float = 10.0) -> EventStore:
    """Wait for a first writer to create the log; give it `settle` s to finish creating it."""
    while not os.path.exists(os.path.join(path, "data.mdb")):
        time.sleep(0.2)
    deadline = time.monotonic() + settle
    while True:
        try:
            return EventStore.open(path, readonly=True)
        except EventStoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- verify / checkpoint -----------------------------------------------------------------

def read_anchor(path: str) -> tuple[int, str]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        position, digest = data["position"], data["hash"]
    except OSError as exc:
        raise InvalidRequest(f"--anchor {path!r}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest(f"--anchor {path!r}: expected JSON {{\"position\": N, "
                             f"\"hash\": \"hex\"}} as `sbx checkpoint` prints") from None
    if not isinstance(position, int) or not isinstance(digest, str):
        raise InvalidRequest(f"--anchor {path!r}: position must be an int and hash a string")
    return position, digest


class VerificationFailed(SandboxError):
    """The hash chain is broken, or the log does not reach its anchor."""


def cmd_verify(args: argparse.Namespace) -> int:
    anchor = read_anchor(args.anchor) if args.anchor else None
    try:
        with context.reader(args) as rt:
            return _verify(args, rt, anchor)
    except StoreCorrupted as exc:     # found while opening (truncated, not an environment)
        raise VerificationFailed(f"verification FAILED: {exc}") from None


def _verify(args: argparse.Namespace, rt: Any, anchor: tuple[int, str] | None) -> int:
    if rt is None:
        if anchor and anchor[0] >= 0:
            raise VerificationFailed(f"verification FAILED: no event log at "
                                     f"{context.events_path(args)!r}, but the anchor "
                                     f"expects position {anchor[0]}")
        raise NotFound(f"no event log at {context.events_path(args)!r}")
    report = rt.store.verify(anchor)
    if args.json:
        context.emit_json({"ok": report.ok, "checked": report.checked,
                           "first_bad_position": report.first_bad_position,
                           "reason": report.reason, "last_position": report.last_position,
                           "last_hash": report.last_hash})
    if not report.ok:
        raise VerificationFailed(
            f"verification FAILED at position {report.first_bad_position}: {report.reason} "
            f"(log {context.events_path(args)!r}"
            + (f", anchor {args.anchor!r})" if args.anchor else ")"))
    if not args.json:
        print(f"ok: {report.checked} events, hash chain intact up to position "
              f"{report.last_position} ({report.last_hash})"
              + (f"; anchor {args.anchor} matches" if anchor else ""))
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    with context.reader(args) as rt:
        if rt is None:
            raise NotFound(f"no event log at {context.events_path(args)!r}")
        position, digest = rt.store.checkpoint()
    context.emit_line({"position": position, "hash": digest})
    return 0


# -- export / diagram --------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    with context.reader(args) as rt:
        if args.sandbox:
            events: Any = context.need(rt, args.sandbox, args).events(args.sandbox)
        else:
            events = rt.store.read_all() if rt else ()
        for event in events:
            sys.stdout.write(json.dumps(audit.export_record(event)) + "\n")
    return 0


def cmd_diagram(args: argparse.Namespace) -> int:
    taken: list[audit.Transition] = []
    if args.container and not (args.sandbox and args.kind == "container"):
        raise InvalidRequest("--container goes with `diagram container --sandbox ID`")
    if args.sandbox:
        with context.reader(args) as rt:
            events = context.need(rt, args.sandbox, args).events(args.sandbox)
        cid = args.container or args.sandbox
        if args.kind == "container" and not any(
                e.type == Ev.OPERATION_STARTED and e.data.get("container") == cid
                for e in events):
            raise NotFound(f"sandbox {args.sandbox!r} never had a container {cid!r}")
        taken = audit.path_taken(events, args.kind, cid)
    sys.stdout.write(audit.diagram(args.kind, taken))
    return 0
