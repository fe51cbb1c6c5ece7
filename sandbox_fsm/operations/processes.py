"""exec and kill: logged operations on a container's processes that do not change the
container's state; exec's compensation kills the process it started."""

from __future__ import annotations

import signal
import uuid

from agent_io import convert

from ..names import Ev, Op
from ..saga import Operation, Step
from .container import oci_user
from .context import ContainerContext, tolerate_gone


def _plan_exec(ctx: ContainerContext) -> dict:
    return {"exec_id": ctx.params.get("exec_id") or uuid.uuid4().hex[:12],
            "args": list(ctx.params["args"]), "env": ctx.params.get("env") or {},
            "cwd": ctx.params.get("cwd") or "/", "user": ctx.params.get("user") or "0:0",
            "terminal": bool(ctx.params.get("terminal"))}


def _exec(ctx: ContainerContext, args: dict) -> dict:
    process = convert.oci_spec_to_proto({"process": {
        "terminal": args["terminal"], "args": args["args"], "env": convert.env_list(args["env"]),
        "cwd": args["cwd"], "user": oci_user(args["user"])}}).Process
    ctx.agent().exec_process(ctx.container_id, args["exec_id"], process)
    return {"container": ctx.container_id, "exec_id": args["exec_id"]}


def _kill_exec(ctx: ContainerContext, args: dict, outcome: dict | None) -> None:
    tolerate_gone(lambda: ctx.agent().signal_process(
        ctx.container_id, signal.SIGKILL, args["exec_id"]))


def _signal(ctx: ContainerContext, args: dict) -> dict:
    sig, exec_id, every = ctx.params["signal"], ctx.params.get("exec_id"), ctx.params["all"]
    ctx.agent().signal_process(ctx.container_id, sig, None if every else exec_id or
                               ctx.container_id, all=every)
    return {"container": ctx.container_id, "signal": int(sig), "all": every,
            "exec_id": exec_id or ""}


EXEC = Operation(Op.EXEC, None, (
    Step("exec_process", Ev.PROCESS_STARTED, _exec, _kill_exec, _plan_exec),
))

KILL = Operation(Op.KILL, None, (
    Step("signal_process", Ev.PROCESS_SIGNALLED, _signal),
), on_crash="forward")
