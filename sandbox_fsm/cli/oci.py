"""OCI-runtime verbs as runc and kata-runtime have them: one bundle, one sandbox, one
container with the same id (kata's single-container pod)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, NotFound, SandboxError
from ..names import ABSENT, STARTED, Ev, Op, State
from . import context, oci_shims

if TYPE_CHECKING:  # each verb imports what it uses when it runs (sbx list stays small)
    from ..repository import Repository
    from ..runtime import Runtime
    from ..state import SandboxState

OCI_VERSION = "1.0.2"
EXIT_GRACE = 1.0      # how long `delete` waits to learn that a killed process has exited


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("create", cmd_create, "create a sandbox and its container from an OCI bundle")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
    p.add_argument("--pid-file", metavar="FILE", help="write the process's (shim's) pid here")
    p.add_argument("--console-socket", metavar="SOCKET",
                   help="send the terminal's master fd to this unix socket (SCM_RIGHTS)")
    for flag in ("--no-pivot", "--no-new-keyring"):
        p.add_argument(flag, action="store_true", help="accepted (runc compatibility)")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="accepted; only 0 is supported")
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
    p = add("ps", cmd_ps, "list the container's processes (json: the host pids of their "
            "shims, as runc's clients expect)")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("ps_args", nargs="*", help="arguments for ps (default -ef)")
    add("list", cmd_list, "list sandboxes")
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
    """Sandbox, container, and the init process's shim, whose pid the client gets."""
    from ..bundle import load_bundle
    if args.preserve_fds:
        raise InvalidRequest(f"--preserve-fds {args.preserve_fds}: only 0 is supported")
    sandbox, container = load_bundle(args.bundle, args.id)
    if container.terminal and not args.console_socket:
        raise InvalidRequest("the process asks for a terminal (process.terminal) but no "
                             "--console-socket was given")
    with context.writer(args) as rt:
        rt.create_sandbox(sandbox)
        try:
            rt.start_sandbox(args.id)
            rt.create_container(args.id, container)
            shim = oci_shims.start_shim(rt, args, args.id, args.id, args.id,
                                        terminal=container.terminal,
                                        console_socket=args.console_socket)
            oci_shims.write_pid_file(args.pid_file, shim.pid)
        except BaseException:      # whatever failed, leave no sandbox behind
            oci_shims.stop_shims(rt, args.id, args.id)
            context.remove(rt, args.id)
            raise
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    with context.writer(args) as rt:
        rt.start_container(args.id, args.id)
        oci_shims.release_init(rt, args.id, args.id)
    return 0


def oci_state(state: SandboxState, cid: str, created: str = "") -> dict[str, Any]:
    """The OCI state of container `cid` as runc prints it: the log's word, except that a
    process whose shim is gone is stopped; the pid is the shim's (the client's view)."""
    from ..bundle import BUNDLE_ANNOTATION
    c = state.containers.get(cid)
    status = c.status if c else state.state
    shim = oci_shims.shim_of(state, cid)
    if c is not None and shim and not oci_shims.live_shims(state, cid) and status in STARTED:
        status = State.STOPPED     # its shim is gone: so is the process
    if status not in (State.CREATED, State.RUNNING, State.PAUSED, State.STOPPED):
        status = State.STOPPED
    pid = shim["pid"] if shim else (state.guest or {}).get("pid", 0)
    annotations = dict(state.config.get("annotations") or {})
    return {"ociVersion": OCI_VERSION, "id": cid, "pid": pid if status != State.STOPPED else 0,
            "status": status, "bundle": annotations.pop(BUNDLE_ANNOTATION, ""),
            "rootfs": (c.config.get("rootfs") if c else None) or "", "created": created,
            "owner": "", "annotations": annotations}


def cmd_state(args: argparse.Namespace) -> int:
    with context.reader(args) as rt:
        reader = context.need(rt, args.id, args)
        state = reader.state(args.id)
        created = _created_at(reader, args.id)
    if state.state in ABSENT:
        why = "it was deleted" if state.state == State.DELETED else "its creation was rolled back"
        raise NotFound(f"container {args.id!r} does not exist: {why} "
                       f"(see `sbx audit {args.id}`)")
    context.emit_json(oci_state(state, args.id, created))
    return 0


def _created_at(rt: Repository, sid: str) -> str:
    """When this incarnation of the sandbox was created (an id can be used again)."""
    from ..audit import iso
    for event in reversed(rt.events(sid)):
        if event.type == Ev.OPERATION_STARTED and event.data.get("operation") == \
                Op.CREATE_SANDBOX:
            return iso(event.recorded_at)
    return ""


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


def _running(rt: Runtime, state: SandboxState, cid: str) -> bool:
    """Is the container's init process still running? Its shim says, else the guest."""
    if oci_shims.shim_of(state, cid) is not None:
        return any(r["exec_id"] == cid for r in oci_shims.live_shims(state, cid))
    return state.state in STARTED and not _exited(rt, state.id, cid)


def cmd_delete(args: argparse.Namespace) -> int:
    with context.writer(args) as rt:
        try:
            state = rt.state(args.id)
        except NotFound:
            if args.force:
                return 0      # as runc: nothing to force away
            raise
        if state.state == State.DELETED:
            if args.force:
                return 0
            raise NotFound(f"container {args.id!r} does not exist: it was deleted")
        c = state.containers.get(args.id)
        if not args.force and c is not None and c.state in STARTED \
                and _running(rt, state, args.id):
            raise InvalidRequest(f"cannot delete {args.id!r}: its process is still running "
                                 "(kill it first, or use --force)")
        oci_shims.stop_shims(rt, args.id, args.id)
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
    if args.json or args.format == "json":
        with context.reader(args) as reader:
            state = context.need(reader, args.id, args).state(args.id)
        context.emit_line(sorted(r["pid"] for r in oci_shims.live_shims(state, args.id)))
        return 0
    with context.writer(args) as rt:
        out = rt.list_processes(args.id, args.id, format="table", args=tuple(args.ps_args))
    sys.stdout.write(out.decode(errors="replace"))
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


def cmd_recover(args: argparse.Namespace) -> int:
    from ..shim.recovery import reconcile

    with context.writer(args, recover=False) as rt:
        report = rt.recover(dry_run=args.dry_run)
        shims = [] if args.dry_run else reconcile(rt, rt.live_sandboxes()[1])
    if args.json:
        context.emit_json({**asdict(report), "ok": report.ok, "lost_shims": shims})
    else:
        print(report)
        if shims:
            print(f"released lost shims: {', '.join(shims)} (their processes ended, "
                  "exit 255)")
    return 0 if report.ok else 1
