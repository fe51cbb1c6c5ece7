"""The sandbox operations, step by step, in the order the seed (kata_agent.go) runs them.

create: shared path, mounts/ -> shared/ bind.  start: guest, proxy, check, CreateSandbox,
then (when configured) the network and StartTracing.
stop (rolls forward): DestroySandbox, StopTracing (dynamic tracing), stop proxy, stop guest.
delete (rolls forward): unmount container mounts, unmount shared/, remove the sandbox dir.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict

from agent_io import AgentError, AgentRpcError

from .. import host
from ..config import RuntimeConfig
from ..guestspec.agent import (
    agent_kernel_params,
    agent_socket_kind,
    hypervisor_devices,
    trace_settings,
)
from ..guestspec.sandbox import dns_lines, kernel_modules, sandbox_storages
from ..names import Ev, Kind, Op, Trigger
from ..saga import IN_DOUBT, Operation, Step
from . import vm
from .context import OpContext, dir_resource, identity, mount_resource, tolerate_gone
from .devices import DETACH_DEVICES
from .network import SETUP_NETWORK

HOSTNAME_MAX = 64
# Static tracing disables VM shutdown (the seed leaves the VM to the agent so the trace
# is complete): stop_vm then gives the guest's own SIGTERM shutdown this long, not 5 s.
STATIC_TRACE_GRACE_S = 30.0


# -- create ---------------------------------------------------------------------------

def _plan_shared_path(ctx: OpContext) -> dict:
    return {"root": str(ctx.layout.root), "sock": str(ctx.layout.sock_dir)}


def _create_shared_path(ctx: OpContext, args: dict) -> dict:
    lay = ctx.layout
    for path in (lay.root, lay.mounts, lay.shared, lay.guest_dir, lay.sock_dir, lay.log_dir):
        host.ensure_private_dir(path)
    # The socket dir is named by a hash, apart from the sandbox dir (host/layout.py).
    sock = {"sock": args["sock"]} if "sock" in args else {}
    return {"acquired": [dir_resource(args["root"], **sock)]}


def _remove_shared_path(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    host.remove_tree(args["root"])
    if "sock" in args:
        host.remove_tree(args["sock"])


def _plan_share(ctx: OpContext) -> dict:
    return {"mounts": str(ctx.layout.mounts), "shared": str(ctx.layout.shared)}


def _mount_shared_dir(ctx: OpContext, args: dict) -> dict:
    host.share_dir(args["mounts"], args["shared"])
    return {"acquired": [mount_resource(args["mounts"], role="mounts"),
                         mount_resource(args["shared"], role="shared")]}


def _unmount_shared_dir(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    host.unshare_dir(args["mounts"], args["shared"])


# -- start ----------------------------------------------------------------------------

def _plan_vm(ctx: OpContext) -> dict:
    lay = ctx.layout
    conf = ctx.host.config
    params = kernel_params(conf)
    devices = [{"type": type(d).__name__, **asdict(d)} for d in hypervisor_devices(
        socket_kind=agent_socket_kind(conf.hypervisor.use_vsock),
        socket_path=str(lay.agent_socket), share_path=str(lay.shared),
        shared_fs=conf.hypervisor.shared_fs,
        supports_fs_sharing=conf.hypervisor.supports_fs_sharing)]
    if ctx.host.driver == vm.QEMU:
        return vm.plan_start(ctx, params, devices)
    argv = [sys.executable, "-m", "agent_io.guest", "--listen", f"unix:{lay.agent_socket}",
            "--guest-dir", str(lay.guest_dir), "--shared-dir", str(lay.shared)]
    if ctx.host.driver == "namespaces":
        argv.append("--namespaces")
    if params:
        argv += ["--kernel-params", params]
    trace = trace_settings(conf.agent.trace, conf.agent.trace_mode, conf.agent.trace_type)
    return {"argv": argv, "socket": str(lay.agent_socket), "log": str(lay.log_dir / "guest.log"),
            "planned_at": time.time(),
            "kernel_params": params, "disable_vm_shutdown": trace.disable_vm_shutdown,
            "devices": devices}


def kernel_params(conf: RuntimeConfig) -> str:
    """The guest kernel command line: `[hypervisor] kernel_params`, then the agent's."""
    agent = [f"{key}={value}" for key, value in agent_kernel_params(conf.agent)]
    return " ".join([*conf.hypervisor.kernel_params.split(), *agent])


def _wait_listening(ctx: OpContext, path: str, ident: host.ProcessIdentity) -> None:
    """Wait for the process to listen on `path`; a non-socket planted there is no listener."""
    host.wait_for_path(path, timeout=ctx.host.config.agent.dial_timeout, ident=ident)
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise host.UnsafePath(f"{path!r} is not a socket: pid {ident.pid} cannot listen there")


def _start_vm(ctx: OpContext, args: dict) -> dict:
    if args.get("driver") == vm.QEMU:
        return vm.start(ctx, args)
    ident = host.spawn(args["argv"], log_path=args["log"])
    try:
        _wait_listening(ctx, args["socket"], ident)
    except BaseException:
        host.terminate(ident)
        raise
    return {"acquired": [{
        "kind": Kind.PROCESS, "key": "process:guest", "role": "guest", "pid": ident.pid,
        "disable_vm_shutdown": bool(args.get("disable_vm_shutdown")),
        "start_time": ident.start_time, "url": f"unix:{args['socket']}",
        "socket": args["socket"]}]}


def _end_processes(ctx: OpContext, idents: list[host.ProcessIdentity], socket: str, *,
                   timeout: float = 5.0) -> None:
    """End a guest or proxy process and drop what points at it: our client, its socket."""
    for ident in idents:
        host.terminate(ident, timeout=timeout)
    ctx.host.forget_agent(ctx.sandbox_id)
    if os.path.lexists(socket):
        os.unlink(socket)


def _stop_process(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    """Stop a process this operation started: by its recorded identity, or when the
    outcome was never recorded, by the unique socket path on its command line."""
    acquired = (outcome or {}).get("acquired") or ()
    idents = ([identity(r) for r in acquired] if acquired
              else host.find_by_argv(args["socket"], f"unix:{args['socket']}",
                                     started_after=args.get("planned_at")))
    _end_processes(ctx, idents, args["socket"])


def _stop_vm_undo(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    if args.get("driver") == vm.QEMU:
        vm.undo_start(ctx, args, outcome)
    else:
        _stop_process(ctx, args, outcome)


def _plan_proxy(ctx: OpContext) -> dict:
    if ctx.host.driver == vm.QEMU:  # the VM proxy owns the channel: no in-process option
        return vm.plan_proxy(ctx)
    lay = ctx.layout
    return {"type": ctx.host.config.proxy.type, "socket": str(lay.proxy_socket),
            "target": str(lay.agent_socket), "log": str(lay.log_dir / "proxy.log"),
            "planned_at": time.time()}


def _start_proxy(ctx: OpContext, args: dict) -> dict:
    if args["type"] == "builtin":
        return {"type": "builtin"}
    if args["type"] == "vm":
        return vm.start_proxy(ctx, args)
    ident = host.spawn(host.proxy_argv(args["socket"], args["target"]), log_path=args["log"])
    try:
        _wait_listening(ctx, args["socket"], ident)
    except BaseException:
        host.terminate(ident)
        raise
    return {"type": "process", "acquired": [{
        "kind": Kind.PROCESS, "key": "process:proxy", "role": "proxy", "pid": ident.pid,
        "start_time": ident.start_time, "url": f"unix:{args['socket']}",
        "socket": args["socket"]}]}


def _stop_proxy_undo(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    if args["type"] != "builtin":
        _stop_process(ctx, args, outcome)


def _check_agent(ctx: OpContext, args: dict) -> dict:
    agent = ctx.agent()
    agent.wait_ready(ctx.host.config.agent.timeouts.check)
    return {"version": agent.version().agent_version}


def _plan_guest_sandbox(ctx: OpContext) -> dict:
    cfg = ctx.state.config
    conf = ctx.host.config
    dns = list(cfg.get("dns") or ()) or dns_lines(cfg.get("oci") or {})
    return {"hostname": (cfg.get("hostname") or ctx.sandbox_id)[:HOSTNAME_MAX], "dns": dns,
            "kernel_modules": list(conf.agent.kernel_modules),
            "guest_hook_path": conf.hypervisor.guest_hook_path,
            "sandbox_pidns": bool(cfg.get("share_pidns"))}


def _create_guest_sandbox(ctx: OpContext, args: dict) -> dict:
    storages = sandbox_storages(ctx.host.config.hypervisor)
    ctx.agent().create_sandbox(
        hostname=args["hostname"], sandbox_id=ctx.sandbox_id, dns=args["dns"],
        storages=storages, guest_hook_path=args["guest_hook_path"],
        kernel_modules=kernel_modules(args["kernel_modules"]),
        sandbox_pidns=bool(args.get("sandbox_pidns")))
    return {"storages": [s.driver for s in storages]}


def _destroy_guest_sandbox(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    tolerate_gone(ctx.agent().destroy_sandbox)


def _start_tracing(ctx: OpContext, args: dict) -> dict:
    ctx.agent().start_tracing()
    return {"tracing": True}


def _stop_tracing_quietly(ctx: OpContext) -> None:
    """StopTracing where tracing may already be off (FAILED_PRECONDITION) or the guest gone."""
    try:
        tolerate_gone(ctx.agent().stop_tracing)
    except AgentRpcError as exc:
        if exc.code != "FAILED_PRECONDITION":
            raise


def _start_tracing_undo(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    _stop_tracing_quietly(ctx)


# -- stop -----------------------------------------------------------------------------

def _guest_teardown_call(ctx: OpContext, args: dict, call: Callable[[], object]) -> dict:
    """A guest call in a teardown is best effort: a failing or hanging call (up to its
    deadline) is recorded and the stop goes on to end the proxy and the VM, which ends
    the guest anyway. Re-run after a crash (its intent without an outcome) it is not
    tried again: it may be what hung, and the next command must not wait for it twice."""
    guest = ctx.state.guest
    if args.get(IN_DOUBT):
        return {"skipped": "in flight when the runtime stopped; the VM stop ends it"}
    if not guest or not host.is_alive(identity(guest)):
        return {}
    try:
        call()
    except AgentError as exc:
        return {"guest_error": str(exc)}
    return {}


def _destroy_in_guest(ctx: OpContext, args: dict) -> dict:
    return _guest_teardown_call(ctx, args, lambda: tolerate_gone(ctx.agent().destroy_sandbox))


def _released_process(ctx: OpContext, role: str) -> dict:
    resource = ctx.state.ledger.get(f"process:{role}")
    if resource is None:
        return {"released": []}
    grace = STATIC_TRACE_GRACE_S if resource.get("disable_vm_shutdown") else 5.0
    if resource.get("driver") == vm.QEMU:
        vm.stop(ctx, resource, grace)
    else:
        _end_processes(ctx, [identity(resource)], resource["socket"], timeout=grace)
    return {"released": [resource["key"]], "pid": resource["pid"]}


def _stop_tracing(ctx: OpContext, args: dict) -> dict:
    return {"tracing": False, **_guest_teardown_call(ctx, args,
                                                     lambda: _stop_tracing_quietly(ctx))}


def _stop_proxy(ctx: OpContext, args: dict) -> dict:
    return _released_process(ctx, "proxy")


def _stop_vm(ctx: OpContext, args: dict) -> dict:
    return _released_process(ctx, "guest")


# -- delete ---------------------------------------------------------------------------

def _unmount_container_mounts(ctx: OpContext, args: dict) -> dict:
    released = []
    for res in ctx.mounts():
        if res.get("role") not in ("mounts", "shared"):
            host.unmount(res["path"])
            released.append(res["key"])
    return {"released": released}


def _unmount_shared(ctx: OpContext, args: dict) -> dict:
    lay = ctx.layout
    host.unshare_dir(lay.mounts, lay.shared)
    return {"released": [k for k, r in ctx.state.ledger.items()
                         if r.get("role") in ("mounts", "shared")]}


def _remove_sandbox_dir(ctx: OpContext, args: dict) -> dict:
    dirs = {k: r for k, r in ctx.state.ledger.items() if r["kind"] == Kind.DIR}
    host.remove_tree(ctx.layout.root)
    for res in dirs.values():
        if res.get("sock"):
            host.remove_tree(res["sock"])
    return {"released": list(dirs)}


def _check_nothing_held(ctx: OpContext, args: dict) -> dict:
    """A sandbox is never deleted while its ledger holds anything: the delete fails here
    (the sandbox is left `failed`, its ledger saying what is still held) instead."""
    held = ctx.state.held()
    if held:
        raise StillHeld(f"sandbox {ctx.sandbox_id!r} still holds {', '.join(held)}")
    return {}


class StillHeld(RuntimeError):
    """Something the ledger holds was not released by the steps before."""


CREATE = Operation(Op.CREATE_SANDBOX, Trigger.CREATE, (
    Step("create_shared_path", Ev.SHARED_PATH_CREATED, _create_shared_path,
         _remove_shared_path, _plan_shared_path),
    Step("mount_shared_dir", Ev.SHARED_DIR_MOUNTED, _mount_shared_dir,
         _unmount_shared_dir, _plan_share),
))

START_TRACING = Step("start_tracing", Ev.TRACING_STARTED, _start_tracing, _start_tracing_undo)
STOP_TRACING = Step("stop_tracing", Ev.TRACING_STOPPED, _stop_tracing)


def options(conf: RuntimeConfig, config: Mapping) -> dict:
    """What start/stop include for this sandbox; recorded as the operation's params so
    recovery rebuilds the same steps whatever the configuration is by then."""
    trace = trace_settings(conf.agent.trace, conf.agent.trace_mode, conf.agent.trace_type)
    return {"network": bool(config.get("network")), "tracing": trace.dynamic_tracing}


def start(opts: Mapping) -> Operation:
    """start_sandbox; `setup_network` and `start_tracing` only when `opts` ask for them."""
    return Operation(Op.START_SANDBOX, Trigger.START, (
        Step("start_vm", Ev.VM_STARTED, _start_vm, _stop_vm_undo, _plan_vm),
        Step("start_proxy", Ev.PROXY_STARTED, _start_proxy, _stop_proxy_undo, _plan_proxy),
        Step("check_agent", Ev.AGENT_CHECKED, _check_agent),
        Step("create_sandbox_in_guest", Ev.GUEST_SANDBOX_CREATED, _create_guest_sandbox,
             _destroy_guest_sandbox, _plan_guest_sandbox),
        *((SETUP_NETWORK,) if opts.get("network") else ()),
        *((START_TRACING,) if opts.get("tracing") else ()),
    ))


def stop(opts: Mapping) -> Operation:
    """stop_sandbox; `stop_tracing` after DestroySandbox when dynamic tracing is on."""
    return Operation(Op.STOP_SANDBOX, Trigger.STOP, (
        Step("destroy_sandbox_in_guest", Ev.GUEST_SANDBOX_DESTROYED, _destroy_in_guest),
        *((STOP_TRACING,) if opts.get("tracing") else ()),
        Step("stop_proxy", Ev.PROXY_STOPPED, _stop_proxy),
        Step("stop_vm", Ev.VM_STOPPED, _stop_vm),
    ), on_crash="forward")


START = start({})
STOP = stop({})

DELETE = Operation(Op.DELETE_SANDBOX, Trigger.DELETE, (
    Step("unmount_container_mounts", Ev.CONTAINER_MOUNTS_UNMOUNTED, _unmount_container_mounts),
    Step("unmount_shared_dir", Ev.SHARED_DIR_UNMOUNTED, _unmount_shared),
    Step("remove_sandbox_dir", Ev.SANDBOX_DIR_REMOVED, _remove_sandbox_dir),
    DETACH_DEVICES,   # after the older steps: an open delete in an older log keeps its indexes
    Step("check_nothing_held", Ev.NOTHING_HELD, _check_nothing_held),
), on_crash="forward")

# Recovery's answer to a guest or proxy that died under a live sandbox: release what the
# sandbox holds on the host, keeping its directory for `delete`.
RELEASE_LOST = Operation(Op.RELEASE_LOST_SANDBOX, None, (
    Step("stop_proxy", Ev.PROXY_STOPPED, _stop_proxy),
    Step("stop_vm", Ev.VM_STOPPED, _stop_vm),
    Step("unmount_container_mounts", Ev.CONTAINER_MOUNTS_UNMOUNTED, _unmount_container_mounts),
    Step("unmount_shared_dir", Ev.SHARED_DIR_UNMOUNTED, _unmount_shared),
    DETACH_DEVICES,
), on_crash="forward")

# Recovery's answer to a deleted sandbox that still holds something (a delete from
# `failed` once skipped the teardown): the same releases, then the dir itself.
RELEASE_DELETED = Operation(Op.RELEASE_DELETED_SANDBOX, None, (
    *RELEASE_LOST.steps,
    Step("remove_sandbox_dir", Ev.SANDBOX_DIR_REMOVED, _remove_sandbox_dir),
), on_crash="forward")

__all__ = ["CREATE", "START", "STOP", "DELETE", "RELEASE_DELETED", "RELEASE_LOST",
           "kernel_params", "options", "start", "stop"]
