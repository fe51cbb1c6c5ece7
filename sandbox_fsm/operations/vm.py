"""The start/stop steps of a sandbox whose VM is a real qemu (`[hypervisor] driver = "qemu"`).

The sandbox operations call these for the qemu driver; what they record says so
(`"driver": "qemu"` in the intent and in the guest's ledger entry), so compensations and
recovery pick the same mechanics from the log whatever the configuration is by then.

- start_vm: the guest image (built and cached on first use), the qemu command line and
  its paths are the intent; the outcome is the qemu process (pid, start time) with its
  QMP socket, agent channel and console log.
- start_proxy: the VM proxy owns the channel and serves the host's agent socket; its
  socket appears once the agent in the guest has answered, so it is also "VM booted".
- stop_vm and every undo: guest shutdown over the channel, QMP quit, SIGKILL. An
  in-doubt start (killed between launch and outcome) finds its qemu by the lock qemu holds
  on the pidfile in the sandbox's private dir: the kernel names the owner.
"""

from __future__ import annotations

import logging
import os
import time

from .. import host
from ..drivers import guestimage, qemu, vmproxy
from ..names import Kind
from .context import OpContext

log = logging.getLogger("qemu")
QEMU = "qemu"
_noticed: set[str] = set()


def _notice_once(text: str | None) -> None:
    if text and text not in _noticed:
        _noticed.add(text)
        log.warning("%s", text)


def _paths(ctx: OpContext) -> qemu.VmPaths:
    return qemu.VmPaths.under(ctx.layout.sock_dir, ctx.layout.log_dir)


def plan_start(ctx: OpContext, kernel_params: str, devices: list[dict]) -> dict:
    """The intent of start_vm: everything qemu will be given, resolved now."""
    hv = ctx.host.config.hypervisor
    kernel = guestimage.find_kernel(hv.kernel)
    initrd = hv.initrd or str(guestimage.ensure(ctx.host.image_cache, kernel.path).path)
    accel, notice = qemu.choose_accel(hv.accel)
    _notice_once(notice)
    share = str(ctx.layout.shared) if hv.supports_fs_sharing else ""
    spec = qemu.QemuSpec(kernel=kernel.path, initrd=initrd, qemu=hv.path,
                         machine=hv.machine_type, accel=accel, vcpus=hv.default_vcpus,
                         memory_mb=hv.default_memory, kernel_params=kernel_params,
                         shared_dir=share, shared_fs=hv.shared_fs, msize_9p=hv.msize_9p)
    paths = _paths(ctx)
    return {"driver": QEMU, "argv": qemu.argv(spec, paths, f"sbx-{ctx.sandbox_id}"),
            "paths": paths.__dict__, "accel": accel, "initrd": initrd, "kernel": kernel.path,
            "kernel_params": kernel_params, "devices": devices,
            "launch_timeout": hv.boot_timeout}


def start(ctx: OpContext, args: dict) -> dict:
    paths = qemu.VmPaths(**args["paths"])
    vm = qemu.launch(list(args["argv"]), paths, timeout=args["launch_timeout"])
    return {"acquired": [{
        "kind": Kind.PROCESS, "key": "process:guest", "role": "guest", "driver": QEMU,
        "pid": vm.pid, "start_time": vm.start_time, "url": "", "socket": vm.channel,
        "qmp": vm.qmp, "console": vm.console, "pidfile": paths.pidfile}]}


def _vm_of(resource: dict) -> qemu.VmProcess:
    return qemu.VmProcess(resource["pid"], resource["start_time"], resource["qmp"],
                          resource["socket"], resource["console"])


def _forget(ctx: OpContext, paths: qemu.VmPaths) -> None:
    ctx.host.forget_agent(ctx.sandbox_id)
    for path in (paths.qmp, paths.channel, paths.pidfile):
        if os.path.lexists(path):
            os.unlink(path)


def undo_start(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    """Stop the qemu this step started: the recorded one, or the pidfile lock's owner."""
    paths = qemu.VmPaths(**args["paths"])
    acquired = (outcome or {}).get("acquired") or ()
    if acquired:
        vms = [_vm_of(r) for r in acquired]
    else:
        owner = qemu.pidfile_owner(paths.pidfile)
        vms = [qemu.VmProcess(owner.pid, owner.start_time, paths.qmp, paths.channel,
                              paths.console)] if owner else []
    for vm in vms:
        qemu.stop(vm)
    _forget(ctx, paths)


def stop(ctx: OpContext, resource: dict, grace: float) -> None:
    """stop_vm for a recorded qemu; the console log stays for the audit."""
    qemu.stop(_vm_of(resource), grace=grace)
    _forget(ctx, _paths(ctx))


def plan_proxy(ctx: OpContext) -> dict:
    lay = ctx.layout
    return {"type": "vm", "socket": str(lay.proxy_socket), "channel": _paths(ctx).channel,
            "log": str(lay.log_dir / "proxy.log"), "planned_at": time.time(),
            "ready_timeout": ctx.host.config.hypervisor.boot_timeout}


def start_proxy(ctx: OpContext, args: dict) -> dict:
    """The VM proxy, ready when the guest agent has answered it through the channel."""
    argv = vmproxy.proxy_argv(args["socket"], args["channel"], args["ready_timeout"])
    ident = host.spawn(argv, log_path=args["log"])
    try:
        host.wait_for_path(args["socket"], timeout=args["ready_timeout"] + 5.0, ident=ident)
    except BaseException:
        host.terminate(ident)
        raise
    return {"type": "vm", "acquired": [{
        "kind": Kind.PROCESS, "key": "process:proxy", "role": "proxy", "pid": ident.pid,
        "start_time": ident.start_time, "url": f"unix:{args['socket']}",
        "socket": args["socket"]}]}

