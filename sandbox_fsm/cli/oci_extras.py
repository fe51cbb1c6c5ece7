"""runc's other verbs: `update --resources`, `events` (runc's JSON shapes), `features`."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, SandboxError
from ..names import STARTED
from . import context
from .oci import OCI_VERSION
from .oci_exec import read_json

if TYPE_CHECKING:  # each verb imports what it uses when it runs
    from ..runtime import Runtime

MAX_INTERVAL = 86400.0   # a day between stats; more overflows timers


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("update", parents=[common], help="change a container's resources",
                       description="Apply OCI LinuxResources (JSON, as runc's --resources "
                       "reads them) to a running container through UpdateContainer.")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--resources", "-r", required=True, metavar="FILE",
                   help="LinuxResources JSON file, '-' for stdin")
    p.set_defaults(func=cmd_update)
    p = sub.add_parser("events", parents=[common], help="stats and OOM events as JSON lines")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--interval", type=_seconds, default=5.0,
                   help=f"seconds between stats (over 0, at most {MAX_INTERVAL:g})")
    p.add_argument("--stats", action="store_true", help="print one stats event and exit")
    p.set_defaults(func=cmd_events)
    sub.add_parser("features", parents=[common], help="what this runtime supports (JSON)"
                   ).set_defaults(func=cmd_features)


def _seconds(text: str) -> float:
    """runc's --interval (`5`, `5s`, `500ms`): finite seconds in (0, MAX_INTERVAL]."""
    scale = 0.001 if text.endswith("ms") else 1.0
    try:
        value = float(text.removesuffix("ms").removesuffix("s")) * scale
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_INTERVAL:          # also false for nan
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds over 0, "
                                         f"at most {MAX_INTERVAL:g}")
    return value


def read_resources(path: str) -> dict[str, Any]:
    data = read_json(path, "--resources")
    if not isinstance(data, dict):
        raise InvalidRequest(f"--resources {path!r}: must be a JSON object (LinuxResources)")
    return data


def cmd_update(args: argparse.Namespace) -> int:
    resources = read_resources(args.resources)
    with context.writer(args) as rt:
        rt.update_container(args.id, args.id, resources)
    return 0


def runc_stats(stats: dict[str, int]) -> dict[str, Any]:
    """The guest's figures in the shape of runc's `events --stats` data."""
    return {"cpu": {"usage": {"total": stats.get("cpu_total_ns", 0),
                              "user": stats.get("cpu_user_ns", 0),
                              "kernel": stats.get("cpu_kernel_ns", 0)}},
            "memory": {"usage": {"usage": stats.get("memory_usage", 0),
                                 "limit": stats.get("memory_limit", 0)}},
            "pids": {"current": stats.get("pids_current", 0),
                     "limit": stats.get("pids_limit", 0)}}


def cmd_events(args: argparse.Namespace) -> int:
    """Stats every --interval (each query is an operation in the log) and OOM events;
    with --stats one stats event only."""
    with context.writer(args) as rt:
        if args.stats:
            context.emit_line({"type": "stats", "id": args.id,
                               "data": runc_stats(rt.stats(args.id, args.id))})
            return 0
        stop = threading.Event()
        threading.Thread(target=_ooms, args=(rt, args.id, stop), daemon=True,
                         name="oom").start()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            _stats_loop(rt, args.id, args.interval, stop)
        except KeyboardInterrupt:
            return 130
        finally:
            stop.set()
    return 0


def _ooms(rt: Runtime, sid: str, stop: threading.Event) -> None:
    from agent_io import AgentError

    client = rt.agent_for(rt.state(sid))
    while not stop.is_set():
        try:
            cid = client.get_oom_event()
        except AgentError:
            return       # the guest went away; the stats loop ends too
        context.emit_line({"type": "oom", "id": cid, "time": _now()})


def _stats_loop(rt: Runtime, sid: str, interval: float, stop: threading.Event) -> None:
    while rt.state(sid).state in STARTED:
        try:
            stats = rt.stats(sid, sid)
        except SandboxError:
            if rt.state(sid).state in STARTED:
                raise
            break
        context.emit_line({"type": "stats", "id": sid, "time": _now(), "data": stats})
        if stop.wait(interval):
            break


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def cmd_features(args: argparse.Namespace) -> int:
    """runc's `features` document, with what sbx implements."""
    context.emit_json({
        "ociVersionMin": "1.0.0", "ociVersionMax": OCI_VERSION,
        "hooks": [], "mountOptions": ["bind", "rbind", "ro", "rw"],
        "linux": {"namespaces": ["mount", "pid", "uts", "ipc"], "capabilities": [],
                  "cgroup": {"v1": False, "v2": False, "systemd": False},
                  "seccomp": {"enabled": False}, "apparmor": {"enabled": False},
                  "selinux": {"enabled": False}},
        "annotations": {"io.sbx.runtime": "sandbox-fsm"}})
    sys.stdout.flush()
    return 0
