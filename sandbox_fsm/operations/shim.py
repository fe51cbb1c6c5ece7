"""Shims (sandbox_fsm/shim/) as ledger resources, each with one owner: the container.

start_shim (create, exec): the intent records the whole shim command line, the outcome
its identity; undone by SIGKILL (found by its unique log path when the outcome was never
recorded). stop_shims (delete): every shim of the container killed and released.
release_lost_shim (recovery of a shim killed from outside): the process it stood for is
killed, its exit recorded as 255 (as containerd does for a lost shim), the shim released.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from agent_io import AgentClient, AgentError

from .. import host
from ..names import Ev, Kind, Op
from ..saga import Operation, Step
from ..shim import shim_key
from ..shim.startgate import open_gate
from .context import OpContext, identity, tolerate_gone

LOST_EXIT_STATUS = 255
EXIT_PROBE_S = 0.2     # a lost shim's process that already exited answers WaitProcess at once


@dataclass(frozen=True)
class ShimSpec:
    """What one shim relays: recorded as the intent of its `start_shim` step."""

    state_dir: str
    runtime_dir: str
    sandbox_id: str
    container_id: str
    exec_id: str          # == container_id for the init process
    terminal: bool
    log: str              # the shim's own diagnostics (also its unique cmdline token)
    start_fifo: str = ""  # init only: released by `start`
    config: str = ""

    def argv(self, start_fd: int | None = None) -> list[str]:
        argv = [sys.executable, "-m", "sandbox_fsm.shim", "--state-dir", self.state_dir,
                "--runtime-dir", self.runtime_dir, "--sandbox", self.sandbox_id,
                "--container", self.container_id, "--exec-id", self.exec_id,
                "--log", self.log]
        if self.terminal:
            argv.append("--terminal")
        if start_fd is not None:
            argv += ["--start-fd", str(start_fd)]
        if self.config:
            argv += ["--config", self.config]
        return argv


def spawn(spec: ShimSpec, stdio: tuple[int, int, int]) -> host.ProcessIdentity:
    """Start the shim in its own session with `stdio` as its 0/1/2 and nothing else.

    We do not wait for it: when this command exits, the client's subreaper adopts it. An
    init shim inherits its start gate open (shim/startgate.py), so `start` never waits for
    the shim to be ready.
    """
    gate = open_gate(spec.start_fifo) if spec.start_fifo else None
    try:
        popen = subprocess.Popen(spec.argv(gate), stdin=stdio[0], stdout=stdio[1],
                                 stderr=stdio[2], start_new_session=True, close_fds=True,
                                 pass_fds=() if gate is None else (gate,), env=_env())
    finally:
        if gate is not None:
            os.close(gate)
    ident = host.identity_of(popen.pid)
    if ident is None:
        raise RuntimeError(f"shim pid {popen.pid} has no /proc entry")
    popen.returncode = 0   # never waited here: the subreaper reaps it
    return ident


def _env() -> dict[str, str]:
    """Our environment minus what would make the shim crash or fault on purpose."""
    return {k: v for k, v in os.environ.items()
            if k not in ("SBX_CRASH_AT", "SBX_AGENT_FAULTS")}


def shims(ctx: OpContext, container_id: str | None) -> list[dict]:
    return [r for r in ctx.state.ledger.values() if r["kind"] == Kind.SHIM
            and (container_id is None or r["container"] == container_id)]


def _plan_start(ctx: OpContext) -> dict:
    return dict(ctx.params["shim"])


def start(stdio: tuple[int, int, int] | None) -> Operation:
    """start_shim with `stdio` as the shim's 0/1/2 (None: rebuilt by recovery, which only
    ever compensates it)."""
    def _start(ctx: OpContext, args: dict) -> dict:
        if stdio is None:
            raise RuntimeError("start_shim has no stdio to hand over (only a compensation "
                               "can run in recovery)")
        spec = ShimSpec(**args)
        ident = spawn(spec, stdio)
        return {"acquired": [{"kind": Kind.SHIM, "key": shim_key(spec.exec_id),
                              "pid": ident.pid, "start_time": ident.start_time,
                              "container": spec.container_id, "exec_id": spec.exec_id,
                              "log": spec.log}]}

    return Operation(Op.START_SHIM, None, (
        Step("start_shim", Ev.SHIM_STARTED, _start, _kill_started, _plan_start),))


def _kill_started(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    acquired = (outcome or {}).get("acquired") or ()
    idents = ([identity(r) for r in acquired] if acquired
              else host.find_by_cmdline(args["log"]))
    for ident in idents:
        host.kill(ident)


def spec_params(spec: ShimSpec) -> dict[str, Any]:
    return {"shim": asdict(spec)}


def _stop_shims(ctx: OpContext, args: dict) -> dict:
    released = []
    for res in shims(ctx, ctx.container_id):
        host.kill(identity(res))
        released.append(res["key"])
    return {"container": ctx.container_id, "released": released}


STOP = Operation(Op.STOP_SHIMS, None, (
    Step("stop_shims", Ev.SHIMS_STOPPED, _stop_shims),), on_crash="forward")


def _end_lost_process(ctx: OpContext, args: dict) -> dict:
    res = ctx.state.ledger.get(ctx.params["key"])
    if res is None:
        return {"released": []}
    cid, eid = res["container"], res["exec_id"]
    status = _exit_status(ctx, cid, eid)
    if status is None:
        tolerate_gone(lambda: ctx.agent().signal_process(cid, signal.SIGKILL, eid))
        status = LOST_EXIT_STATUS
    return {"container": cid, "exec_id": "" if eid == cid else eid, "status": status,
            "lost_shim": res["pid"], "released": [res["key"]]}


def _exit_status(ctx: OpContext, cid: str, eid: str) -> int | None:
    """The status of a process that already exited (its shim died after it); None while
    it runs or when the guest cannot tell."""
    url = ctx.state.agent_url
    if not url:
        return None
    with AgentClient(url, sandbox_id=ctx.sandbox_id,
                     timeouts={"WaitProcess": EXIT_PROBE_S, "default": 5.0}) as client:
        try:
            return client.wait_process(cid, eid)
        except AgentError:
            return None


RELEASE_LOST = Operation(Op.RELEASE_LOST_SHIM, None, (
    Step("end_lost_process", Ev.PROCESS_EXITED, _end_lost_process),), on_crash="forward")

START = start(None)
