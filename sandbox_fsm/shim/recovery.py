"""Shims lost from outside (killed, or left by a crash of the host), found by their
recorded identity: the process each stood for is ended and its exit recorded (255 when
the guest cannot give the real one, as containerd reports a task whose shim vanished).

A shim that ended because its process did is not lost: its exit is in the log already
(the shim records ProcessExited before it exits).
"""

from __future__ import annotations

from ..errors import SandboxError
from ..host import ProcessIdentity, is_alive
from ..names import ACTIVE, Kind, State
from ..operations import shim as shim_ops
from ..runtime import Runtime
from ..state import SandboxState


def lost_shims(state: SandboxState) -> list[dict]:
    """Shim resources whose process is gone while their process's exit is unrecorded."""
    lost = []
    for res in state.ledger.values():
        if res["kind"] != Kind.SHIM or is_alive(ProcessIdentity(res["pid"], res["start_time"])):
            continue
        c = state.containers.get(res["container"])
        if c is None:
            continue
        if res["exec_id"] == res["container"]:
            exited = c.exit_status is not None
        else:
            exited = isinstance((c.processes.get(res["exec_id"]) or {}).get("status"), int)
        if not exited and c.state in ACTIVE:
            lost.append(res)
    return lost


def reconcile(rt: Runtime, sandbox_ids: list[str]) -> list[str]:
    """Release every lost shim of these sandboxes; the keys released (a sandbox busy
    with another operation is left for the next pass)."""
    released = []
    for sid in sandbox_ids:
        try:
            state = rt.state(sid)
            if state.operation is not None or state.state != State.RUNNING:
                continue
            for res in lost_shims(state):
                rt.engine.container_op(sid, res["container"], shim_ops.RELEASE_LOST,
                                 params={"key": res["key"]})
                released.append(res["key"])
        except SandboxError:
            continue    # busy or gone meanwhile: the next `sbx` looks again
    return released
