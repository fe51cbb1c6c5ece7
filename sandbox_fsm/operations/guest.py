"""Operations on a running sandbox and its containers: each one step, each logged.

pause/resume (containers and the whole sandbox) are transitions whose compensation is the
opposite rpc. The rest leave the state as it is and roll forward after a crash (running
them again is harmless). Reads that change nothing are not operations: they call the
guest directly (guest_calls.py) and nothing is journalled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from agent_io import AgentRpcError, convert

from ..names import Ev, Op, State, Trigger
from ..saga import Operation, Plan, Step, Undo
from .context import ContainerContext, OpContext


def _single(name: str, step: str, event: str, action: Callable[[Any, dict], dict], *,
            trigger: str | None = None, undo: Undo | None = None, plan: Plan | None = None,
            forward: bool = False) -> Operation:
    return Operation(name, trigger, (Step(step, event, action, undo, plan),),
                     on_crash="forward" if forward else "rollback")


def _tolerating(call: Callable[[], object], code: str) -> None:
    """Run an rpc whose effect may already be in place (the agent answers `code`)."""
    try:
        call()
    except AgentRpcError as exc:
        if exc.code != code:
            raise


# -- containers: pause / resume ----------------------------------------------------------

def _pause(ctx: ContainerContext, args: dict) -> dict:
    ctx.agent().pause_container(ctx.container_id)
    return {"container": ctx.container_id}


def _resume(ctx: ContainerContext, args: dict) -> dict:
    ctx.agent().resume_container(ctx.container_id)
    return {"container": ctx.container_id}


def _pause_undo(ctx: ContainerContext, args: dict, outcome: dict | None) -> None:
    _tolerating(lambda: ctx.agent().resume_container(ctx.container_id), "FAILED_PRECONDITION")


def _resume_undo(ctx: ContainerContext, args: dict, outcome: dict | None) -> None:
    _tolerating(lambda: ctx.agent().pause_container(ctx.container_id), "FAILED_PRECONDITION")


PAUSE_CONTAINER = _single(Op.PAUSE_CONTAINER, "pause_container_in_guest", Ev.CONTAINER_PAUSED,
                          _pause, trigger=Trigger.PAUSE, undo=_pause_undo)
RESUME_CONTAINER = _single(Op.RESUME_CONTAINER, "resume_container_in_guest",
                           Ev.CONTAINER_RESUMED, _resume, trigger=Trigger.RESUME, undo=_resume_undo)


# -- the sandbox: pause / resume every container -------------------------------------------

def _plan_running(ctx: OpContext) -> dict:
    """The containers the sandbox's pause freezes (and its resume thaws): those the log
    says are running; a container paused on its own stays paused."""
    return {"containers": sorted(c.id for c in ctx.state.containers.values()
                                 if c.state == State.RUNNING)}


def _each(ctx: OpContext, cids: list[str], rpc: str, tolerate: bool) -> None:
    for cid in cids:
        call: Callable[[str], None] = getattr(ctx.agent(), rpc)
        if tolerate:
            _tolerating(partial(call, cid), "FAILED_PRECONDITION")
        else:
            call(cid)


def _pause_all(ctx: OpContext, args: dict) -> dict:
    _each(ctx, args["containers"], "pause_container", tolerate=False)
    return {"containers": args["containers"]}


def _resume_all(ctx: OpContext, args: dict) -> dict:
    _each(ctx, args["containers"], "resume_container", tolerate=False)
    return {"containers": args["containers"]}


def _pause_all_undo(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    _each(ctx, args["containers"], "resume_container", tolerate=True)


def _resume_all_undo(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    _each(ctx, args["containers"], "pause_container", tolerate=True)


PAUSE_SANDBOX = _single(Op.PAUSE_SANDBOX, "pause_containers", Ev.SANDBOX_PAUSED, _pause_all,
                        trigger=Trigger.PAUSE, undo=_pause_all_undo, plan=_plan_running)
RESUME_SANDBOX = _single(Op.RESUME_SANDBOX, "resume_containers", Ev.SANDBOX_RESUMED, _resume_all,
                         trigger=Trigger.RESUME, undo=_resume_all_undo, plan=_plan_running)


# -- containers: update, stdio, reads ---------------------------------------------------------

def _update(ctx: ContainerContext, args: dict) -> dict:
    resources = convert.oci_spec_to_proto(
        {"linux": {"resources": ctx.params["resources"]}}).Linux.Resources
    ctx.agent().update_container(ctx.container_id, resources)
    return {"container": ctx.container_id}


def _exec_id(ctx: ContainerContext) -> str:
    return ctx.params.get("exec_id") or ctx.container_id or ""


def _resize(ctx: ContainerContext, args: dict) -> dict:
    rows, columns = ctx.params["rows"], ctx.params["columns"]
    ctx.agent().tty_win_resize(ctx.container_id, _exec_id(ctx), rows, columns)
    return {"container": ctx.container_id, "exec_id": _exec_id(ctx), "rows": rows,
            "columns": columns}


def _close_stdin(ctx: ContainerContext, args: dict) -> dict:
    ctx.agent().close_stdin(ctx.container_id, _exec_id(ctx))
    return {"container": ctx.container_id, "exec_id": _exec_id(ctx)}


UPDATE_CONTAINER = _single(Op.UPDATE_CONTAINER, "update_container_in_guest", Ev.CONTAINER_UPDATED,
                           _update, forward=True)
RESIZE_TTY = _single(Op.RESIZE_TTY, "resize_tty", Ev.TTY_RESIZED, _resize, forward=True)
CLOSE_STDIN = _single(Op.CLOSE_STDIN, "close_stdin", Ev.STDIN_CLOSED, _close_stdin, forward=True)


# -- the guest machine ----------------------------------------------------------------------

def _online(ctx: OpContext, args: dict) -> dict:
    p = ctx.params
    ctx.agent().online_cpu_mem(p["cpus"], wait=p["wait"], cpu_only=p["cpu_only"])
    return {"cpus": p["cpus"], "cpu_only": p["cpu_only"]}


def _plan_hotplug(ctx: OpContext) -> dict:
    section = ctx.host.config.hypervisor.memory_section_size_mb
    return {"addr": ctx.params["addr"], "size_mb": ctx.params["size_mb"], "section_mb": section}


def _hotplug(ctx: OpContext, args: dict) -> dict:
    ctx.agent().mem_hotplug_by_probe(args["addr"], args["size_mb"], args["section_mb"])
    return {"addr": args["addr"], "sections": args["size_mb"] // args["section_mb"]}


def _reseed(ctx: OpContext, args: dict) -> dict:
    data = os.urandom(ctx.params["bytes"])
    ctx.agent().reseed_random_dev(data)
    return {"bytes": len(data)}


def _set_time(ctx: OpContext, args: dict) -> dict:
    when = datetime.fromisoformat(ctx.params["time"])
    ctx.agent().set_guest_date_time(when)
    return {"time": ctx.params["time"]}


def _copy(ctx: OpContext, args: dict) -> dict:
    src, dst = ctx.params["src"], ctx.params["dst"]
    ctx.agent().copy_file(src, dst)
    return {"src": src, "dst": dst, "size": os.stat(src).st_size}


ONLINE_CPU_MEM = _single(Op.ONLINE_CPU_MEM, "online_cpu_mem", Ev.CPU_MEM_ONLINED, _online,
                         forward=True)
HOTPLUG_MEMORY = _single(Op.HOTPLUG_MEMORY, "mem_hotplug_by_probe", Ev.MEMORY_HOTPLUGGED,
                         _hotplug, plan=_plan_hotplug, forward=True)
RESEED_RNG = _single(Op.RESEED_RNG, "reseed_random_dev", Ev.RNG_RESEEDED, _reseed, forward=True)
SET_GUEST_TIME = _single(Op.SET_GUEST_TIME, "set_guest_date_time", Ev.GUEST_TIME_SET, _set_time,
                         forward=True)
COPY_FILE = _single(Op.COPY_FILE, "copy_file", Ev.FILE_COPIED, _copy, forward=True)

SANDBOX_OPERATIONS = (PAUSE_SANDBOX, RESUME_SANDBOX, ONLINE_CPU_MEM, HOTPLUG_MEMORY,
                      RESEED_RNG, SET_GUEST_TIME, COPY_FILE)
CONTAINER_OPERATIONS = (PAUSE_CONTAINER, RESUME_CONTAINER, UPDATE_CONTAINER, RESIZE_TTY,
                        CLOSE_STDIN)

__all__ = [
    "CLOSE_STDIN", "CONTAINER_OPERATIONS", "COPY_FILE", "HOTPLUG_MEMORY", "ONLINE_CPU_MEM",
    "PAUSE_CONTAINER", "PAUSE_SANDBOX", "RESEED_RNG", "RESIZE_TTY", "RESUME_CONTAINER",
    "RESUME_SANDBOX", "SANDBOX_OPERATIONS", "SET_GUEST_TIME", "UPDATE_CONTAINER",
]
