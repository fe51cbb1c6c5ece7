"""Where the CLI keeps its state, how it opens the log, and how it prints results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventstore import EventStore

from .. import host
from ..errors import NotFound, SandboxError
from ..host import InvalidId, validate_id
from ..names import ABSENT, State
from ..repository import Repository

if TYPE_CHECKING:  # the verbs import what they use when they run (sbx list stays small)
    from ..config import RuntimeConfig
    from ..runtime import Runtime


def default_dirs(environ: Mapping[str, str] | None = None, euid: int | None = None
                 ) -> tuple[str, str]:
    """(state dir, runtime dir): SBX_* variables, else root's or the XDG locations."""
    env = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        state, run = "/var/lib/sbx", "/run/sbx"
    else:
        home = env.get("HOME") or str(Path.home())
        state = os.path.join(env.get("XDG_STATE_HOME") or os.path.join(home, ".local/state"),
                             "sbx")
        xdg_run = env.get("XDG_RUNTIME_DIR")
        run = os.path.join(xdg_run, "sbx") if xdg_run else f"/tmp/sbx-{euid}"
    return env.get("SBX_STATE_DIR") or state, env.get("SBX_RUNTIME_DIR") or run


def events_path(args: argparse.Namespace) -> str:
    return os.path.join(args.state_dir, "events")


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    from ..config import RuntimeConfig, load_config
    return load_config(args.config) if args.config else RuntimeConfig.default()


RUN_OWNER = "io.sbx.run.owner"   # annotation: "<pid>:<start time>" of the `sbx run`


def this_process() -> str:
    me = host.identity_of(os.getpid())
    assert me is not None
    return f"{me.pid}:{me.start_time}"


@contextmanager
def writer(args: argparse.Namespace, *, recover: bool = True) -> Iterator[Runtime]:
    """A Runtime that may append; opening it recovers what a killed `sbx` left half-done,
    including the sandboxes of `sbx run`s killed before they could remove them, and the
    processes of shims killed from outside (shim/recovery.py)."""
    from ..runtime import Runtime
    rt = Runtime.open(args.state_dir, args.runtime_dir, runtime_config(args), recover=recover)
    if recover:
        reap_orphans(rt)
        from ..shim.recovery import reconcile
        reconcile(rt, rt.live_sandboxes()[1])
    try:
        yield rt
    finally:
        rt.close()


@contextmanager
def reader(args: argparse.Namespace) -> Iterator[Repository | None]:
    """The sandboxes of the log opened read-only (None when there is no log yet).

    Read-only, so it works while a Runtime in another process writes, and a query can
    never append anything; a Repository, not a Runtime, so a query loads no agent
    client, configuration or operations.
    """
    if args.config:
        runtime_config(args)  # a query needs no configuration, but a bad one is refused
    path = events_path(args)
    if not os.path.exists(os.path.join(path, "data.mdb")):
        yield None
        return
    store = EventStore.open(path, readonly=True)
    try:
        yield Repository(store)
    finally:
        store.close()


def need(rt: Repository | None, sandbox_id: str, args: argparse.Namespace) -> Repository:
    """The reader, or NotFound when there is no log at all."""
    if rt is None:
        raise NotFound(f"no sandbox {sandbox_id!r}: there is no event log at "
                       f"{events_path(args)!r}")
    return rt


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def emit_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns; the last column is not padded."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                           for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) if i < len(widths) - 1 else c
                  for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in cells)


def sandbox_id(text: str) -> str:
    """argparse type for ids: a bad one is a usage error (exit 2) naming the rule."""
    try:
        return validate_id(text, "id")
    except InvalidId as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def reap_orphans(rt: Runtime) -> None:
    """Remove sandboxes whose `sbx run` (not --keep) died without removing them, as
    `docker run --rm` leaves it to the daemon; one left busy by a live process is skipped."""
    for sid in rt.live_sandboxes()[1]:
        state = rt.state(sid)
        owner = (state.config.get("annotations") or {}).get(RUN_OWNER)
        if not owner or state.operation is not None or state.state in ABSENT:
            continue
        try:
            pid, start = (int(x) for x in owner.split(":"))
        except ValueError:
            continue   # not written by `sbx run`: not ours to judge
        if host.is_alive(host.ProcessIdentity(pid, start)):
            continue
        print(f"sbx: removing sandbox {sid!r}, left by a killed `sbx run` (pid {pid})",
              file=sys.stderr)
        remove(rt, sid)


def remove(rt: Runtime, sid: str, *, strict: bool = False) -> None:
    """Stop and delete whatever of the sandbox exists; report (not raise) what fails,
    unless `strict` (`sbx delete`: a sandbox busy elsewhere is a conflict, exit 3)."""
    try:
        state = rt.state(sid)
    except NotFound:
        return
    try:
        for cid, c in state.containers.items():
            if c.state in (State.CREATED, State.RUNNING, State.PAUSED, State.FAILED):
                rt.stop_container(sid, cid)
            if c.state != State.DELETED:
                rt.delete_container(sid, cid)
        if rt.state(sid).state not in ABSENT:
            rt.delete_sandbox(sid, force=True)
    except SandboxError as exc:
        if strict:
            raise
        print(f"sbx: error: cleaning up sandbox {sid!r}: {exc}", file=sys.stderr)
