"""OCI-runtime verbs as runc and kata-runtime have them: one bundle, one sandbox, one
container with the same id (kata's single-container pod)."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, NotFound, SandboxError
from ..names import ABSENT, ACTIVE, STARTED, State
from . import context

if TYPE_CHECKING:  # each verb imports what it uses when it runs (sbx list stays small)
    from ..runtime import Runtime
    from ..state import SandboxState

OCI_VERSION = "1.0.2"
MAX_INTERVAL = 86400.0   # a day between stats; more overflows timers
EXIT_GRACE = 1.0      # how long `delete` waits to learn that a killed process has exited


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("create", cmd_create, "create a sandbox and its container from an OCI bundle")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
    add("start", cmd_start, "start the container's process").add_argument(
        "id", type=context.sandbox_id)
    add("state", cmd_state, "print the OCI state of a container").add_argument(
        "id", type=context.sandbox_id)
    p = add("kill", cmd_kill, "send a signal to the container's process")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("signal", nargs="?", default="TERM", help="name (TERM, SIGKILL) or number")
    p.add_argument("--all", "-a", action="store_true", help="signal every process")
    p = add("delete", cmd_delete, "delete the container and its sandbox")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--force", "-f", action="store_true", help="stop a running one first")
    add("pause", cmd_pause, "pause the container's processes").add_argument(
        "id", type=context.sandbox_id)
    add("resume", cmd_resume, "resume the container's processes").add_argument(
        "id", type=context.sandbox_id)
    p = add("ps", cmd_ps, "list the container's processes")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("ps_args", nargs="*", help="arguments for ps (default -ef)")
    add("list", cmd_list, "list sandboxes")
    p = add("events", cmd_events, "stats and OOM events as JSON lines")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--interval", type=interval, default=5.0,
                   help=f"seconds between stats (over 0, at most {MAX_INTERVAL:g})")
    p = add("recover", cmd_recover, "finish interrupted operations; release lost resources")
    p.add_argument("--dry-run", action="store_true", help="report, change nothing")


def parse_signal(text: str) -> int:
    """TERM, SIGTERM, sigterm or 15 -> 15."""
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if hasattr(signal.Signals, name):
            return int(signal.Signals[name])
    raise InvalidRequest(f"unknown signal {text!r} (use a name like TERM or a number "
                         f"1-{signal.NSIG - 1})")


def cmd_create(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    sandbox, container = load_bundle(args.bundle, args.id)
    with context.writer(args) as rt:
        rt.create_sandbox(sandbox)
        try:
            rt.start_sandbox(args.id)
            rt.create_container(args.id, container)
        except BaseException:      # whatever failed, leave no sandbox behind
            context.remove(rt, args.id)
            raise
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    with context.writer(args) as rt:
        rt.start_container(args.id, args.id)
    return 0


def oci_state(state: SandboxState, cid: str) -> dict[str, Any]:
    from ..bundle import BUNDLE_ANNOTATION
    """The OCI runtime-spec state of container `cid` as the log says it is."""
    c = state.containers.get(cid)
    status = c.status if c else state.state
    if status not in (State.CREATED, State.RUNNING, State.PAUSED, State.STOPPED):
        status = State.STOPPED
    annotations = dict(state.config.get("annotations") or {})
    return {"ociVersion": OCI_VERSION, "id": cid, "status": status,
            "pid": (state.guest or {}).get("pid", 0) if status in ACTIVE else 0,
            "bundle": annotations.pop(BUNDLE_ANNOTATION, ""), "annotations": annotations}


def cmd_state(args: argparse.Namespace) -> int:
    with context.reader(args) as rt:
        state = context.need(rt, args.id, args).state(args.id)
    if state.state in ABSENT:
        why = "it was deleted" if state.state == State.DELETED else "its creation was rolled back"
        raise NotFound(f"container {args.id!r} does not exist: {why} "
                       f"(see `sbx audit {args.id}`)")
    context.emit_json(oci_state(state, args.id))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    signum = parse_signal(args.signal)
    with context.writer(args) as rt:
        rt.kill(args.id, args.id, signum, all=args.all)
    return 0


def _exited(rt: Runtime, sid: str, cid: str) -> bool:
    """Has the container's process exited? Learn it from the guest (and record it)."""
    c = rt.state(sid).containers.get(cid)
    if c is None or c.state not in STARTED or c.exit_status is not None:
        return True
    done = threading.Event()

    def wait() -> None:
        try:
            rt.wait(sid, cid)
        except SandboxError:
            return
        except Exception:  # noqa: BLE001 - the guest is gone: nothing is running
            pass
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    return done.wait(EXIT_GRACE)


def cmd_delete(args: argparse.Namespace) -> int:
    with context.writer(args) as rt:
        state = rt.state(args.id)
        if not args.force and state.state in STARTED \
                and not _exited(rt, args.id, args.id):
            raise InvalidRequest(f"cannot delete {args.id!r}: its process is still running "
                                 "(kill it first, or use --force)")
        context.remove(rt, args.id, strict=True)
        final = rt.state(args.id)
        if final.state != State.DELETED:
            raise SandboxError(f"sandbox {args.id!r} was not deleted: it is {final.state}; "
                               f"still held: {', '.join(final.held()) or 'nothing'}")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    with context.writer(args) as rt:
        rt.pause_container(args.id, args.id)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with context.writer(args) as rt:
        rt.resume_container(args.id, args.id)
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    with context.writer(args) as rt:
        out = rt.list_processes(args.id, args.id, format="json" if args.json else "table",
                                args=tuple(args.ps_args))
    sys.stdout.write(out.decode(errors="replace") + ("\n" if args.json else ""))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ..audit import iso
    rows: list[dict[str, Any]] = []
    with context.reader(args) as rt:
        for state in rt.list_sandboxes() if rt is not None else []:
            assert rt is not None
            first = next(iter(rt.store.read_stream(f"sandbox-{state.id}")), None)
            rows.append({"id": state.id, "state": state.state,
                         "containers": {cid: c.status for cid, c in state.containers.items()},
                         "created": iso(first.recorded_at) if first else ""})
    if args.json:
        context.emit_json(rows)
    else:
        print(context.table(["ID", "STATE", "CONTAINERS", "CREATED"], [
            (r["id"], r["state"],
             ",".join(f"{c}:{s}" for c, s in r["containers"].items()) or "-", r["created"])
            for r in rows]))
    return 0


def interval(text: str) -> float:
    """argparse type: a finite number of seconds in (0, MAX_INTERVAL] (nan, inf refused)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_INTERVAL:          # also false for nan
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds over 0, "
                                         f"at most {MAX_INTERVAL:g}")
    return value


def cmd_events(args: argparse.Namespace) -> int:
    """Stats every --interval (each query is an operation in the log) and OOM events."""
    from agent_io import AgentError
    with context.writer(args) as rt:
        client = rt.agent_for(rt.state(args.id))
        stop = threading.Event()

        def oom() -> None:
            while not stop.is_set():
                try:
                    cid = client.get_oom_event()
                except AgentError:
                    return       # the guest went away; the stats loop ends too
                context.emit_line({"type": "oom", "id": cid, "time": _now()})

        threading.Thread(target=oom, daemon=True, name="oom").start()
        try:
            while rt.state(args.id).state in STARTED:
                try:
                    stats = rt.stats(args.id, args.id)
                except SandboxError:
                    if rt.state(args.id).state in STARTED:
                        raise
                    break
                context.emit_line({"type": "stats", "id": args.id, "time": _now(),
                                   "data": stats})
                if stop.wait(args.interval):
                    break
        except KeyboardInterrupt:
            return 130
        finally:
            stop.set()
    return 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def cmd_recover(args: argparse.Namespace) -> int:
    with context.writer(args, recover=False) as rt:
        report = rt.recover(dry_run=args.dry_run)
    if args.json:
        context.emit_json({**asdict(report), "ok": report.ok})
    else:
        print(report)
    return 0 if report.ok else 1
