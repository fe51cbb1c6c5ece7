"""The CLI's side of shims: start one for a process (create, exec), hand its pid to the
client (--pid-file), release an init shim at `start`, stop them all at `delete`.

A shim is started through a logged operation (operations/shim.py), so it is a ledger
resource like the guest and the proxy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import TYPE_CHECKING

from .. import host
from ..errors import SandboxError
from ..names import ACTIVE, Kind
from ..shim import shim_key

if TYPE_CHECKING:  # operations and the runtime load only for the verbs that change things
    from ..runtime import Runtime
    from ..state import SandboxState


def start_shim(rt: Runtime, args: argparse.Namespace, sid: str, cid: str, exec_id: str, *,
               terminal: bool, console_socket: str | None) -> host.ProcessIdentity:
    """Start the shim of one process with our stdio (or a new terminal whose master goes
    to `console_socket`); return its identity."""
    from ..operations import shim as shim_ops
    from ..shim.console import send_console

    lay = rt.layout(sid)
    spec = shim_ops.ShimSpec(
        state_dir=os.path.abspath(args.state_dir), runtime_dir=str(rt.runtime_dir),
        sandbox_id=sid, container_id=cid, exec_id=exec_id,
        terminal=bool(terminal and console_socket),
        log=str(lay.log_dir / f"shim-{exec_id}.log"),
        start_fifo=str(lay.root / f"start-{cid}") if exec_id == cid else "",
        config=os.path.abspath(args.config) if args.config else "")
    slave = send_console(console_socket) if spec.terminal and console_socket else None
    stdio = (slave, slave, slave) if slave is not None else (0, 1, 2)
    try:
        state = rt.engine.container_op(sid, cid, shim_ops.start(stdio),
                                 params=shim_ops.spec_params(spec))
    finally:
        if slave is not None:
            os.close(slave)
    res = state.ledger[shim_key(exec_id)]
    return host.ProcessIdentity(res["pid"], res["start_time"])


def write_pid_file(path: str | None, pid: int) -> None:
    """Write the pid as runc does: the whole file appears at once (rename)."""
    if not path:
        return
    target = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".pid-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(str(pid))
        os.rename(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def shim_of(state: SandboxState, exec_id: str) -> dict | None:
    """The shim of one process (exec id == container id for the init process)."""
    return state.ledger.get(shim_key(exec_id))


def live_shims(state: SandboxState, cid: str) -> list[dict]:
    return [r for r in state.ledger.values() if r["kind"] == Kind.SHIM
            and r["container"] == cid and host.is_alive(host.ProcessIdentity(
                r["pid"], r["start_time"]))]


def release_init(rt: Runtime, sid: str, cid: str) -> None:
    """After StartContainer: let the init shim start relaying (no shim: nothing to do)."""
    from ..shim.startgate import release

    res = shim_of(rt.state(sid), cid)
    if res is None:
        return
    if not release(str(rt.layout(sid).root / f"start-{cid}")):
        raise SandboxError(f"the shim of container {cid!r} (pid {res['pid']}) is gone; "
                           "its process cannot be attached")


def stop_shims(rt: Runtime, sid: str, cid: str) -> None:
    """Kill and release every shim of the container (before its teardown)."""
    from ..operations import shim as shim_ops

    state = rt.state(sid)
    c = state.containers.get(cid)
    if c is None or c.state not in ACTIVE:
        return
    if any(r["kind"] == Kind.SHIM and r["container"] == cid for r in state.ledger.values()):
        rt.engine.container_op(sid, cid, shim_ops.STOP, need_guest=False)
