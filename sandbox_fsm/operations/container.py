"""The container operations, as the seed runs them.

create: bind the rootfs into mounts/<cid>/rootfs, bind each shared volume into mounts/
under a unique name, CreateContainer with the seed's spec, storages and devices (see
`guest_request`); compensations unmount in reverse (rollbackFailingContainerCreation).
A rootfs drive with an `image` is attached first (operations/devices.py) and named to the
agent by its device path. start: StartContainer.  stop (rolls forward): SIGKILL every
process, RemoveContainer.  delete (rolls forward): unmount its mounts, detach its devices.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from functools import partial
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict

from agent_io import convert
from agent_io import messages as m

from .. import host
from ..config import RuntimeConfig
from ..guestspec.blockdev import block_volume_storage, container_devices, rootfs_storage
from ..guestspec.constrain import agent_pidns, constrain_spec
from ..guestspec.mounts import (
    ephemeral_storages,
    handle_shm,
    hugepage_storages,
    is_host_device,
    is_system_mount,
    local_storages,
    relocate_block_volumes,
    remove_ignored_mounts,
    replace_mount_sources,
    shared_mounts,
)
from ..guestspec.paths import container_root_parent, container_root_path
from ..names import Ev, Op, Trigger
from ..saga import Operation, Step
from ..spec import ContainerConfig
from .context import ContainerContext, mount_resource, tolerate_gone
from .devices import DETACH_DEVICES, as_attached, attach_steps, attached


def _config(ctx: ContainerContext) -> ContainerConfig:
    return ContainerConfig.from_dict(ctx.params["config"])


# -- create ---------------------------------------------------------------------------

def _plan_rootfs(ctx: ContainerContext) -> dict:
    cfg = _config(ctx)
    default = cfg.rootfs is None
    args: dict[str, Any] = {
        "source": str(_host_view_dir(ctx, cfg.id)) if default else cfg.rootfs,
            "default": default, "target": str(ctx.layout.rootfs_target(cfg.id)),
            "dir": str(ctx.layout.container_dir(cfg.id))}
    if default:   # the container gets it read-only (oci_spec), runc its /proc and /dev
        view = host.plan_host_view(ctx.host.private_paths)
        args.update(links=view.links, binds=list(view.binds), dirs=list(view.dirs))
    return args


def _host_view_dir(ctx: ContainerContext, cid: str) -> os.PathLike[str]:
    """Where a container that names no rootfs gets one built: outside mounts/, so the
    binds inside it stay private and reach the guest once, through the rootfs bind."""
    return ctx.layout.root / "rootfs" / cid


def _mount_rootfs(ctx: ContainerContext, args: dict) -> dict:
    source, target = args["source"], args["target"]
    acquired = _build_host_view(ctx, args) if args["default"] else []
    if not os.path.isdir(source):
        raise FileNotFoundError(f"rootfs {source!r} is not a directory")
    _makedirs_within(target, ctx.layout.mounts)
    host.bind_mount(source, target, recursive=args["default"], within=ctx.layout.mounts)
    copies = {"copies": source} if args["default"] else {}   # the host view's binds
    return {"acquired": [*acquired, mount_resource(target, container=ctx.container_id,
                                                   role="rootfs", **copies)]}


def _build_host_view(ctx: ContainerContext, args: dict) -> list[dict]:
    """The host's / seen read-only (host/hostview.py), in a dir of ours that the guest
    may write to (volumes' mount points, local volumes)."""
    source = args["source"]
    _makedirs_within(source, ctx.layout.root)
    for name, link in args["links"].items():
        if not os.path.lexists(os.path.join(source, name)):
            os.symlink(link, os.path.join(source, name))
    for name in args["dirs"]:
        os.makedirs(os.path.join(source, name), mode=0o1777 if name == "tmp" else 0o755,
                    exist_ok=True)
    acquired = []
    for name in args["binds"]:
        point = os.path.join(source, name)
        os.makedirs(point, mode=0o755, exist_ok=True)
        host.bind_mount("/" + name, point, readonly=True, within=ctx.layout.root)
        acquired.append(mount_resource(point, container=ctx.container_id, role="host-view"))
    return acquired


def _makedirs_within(path: str, within: os.PathLike[str]) -> None:
    """`mkdir -p` below `within` that never writes through a symlinked component."""
    current = os.fspath(within)
    for part in os.path.relpath(path, current).split(os.sep):
        current = os.path.join(current, part)
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if os.path.islink(current) or not os.path.isdir(current):
                raise host.UnsafePath(f"mount target {path!r}: {current!r} is a symlink or "
                                      f"not a directory") from None


def _unmount_rootfs(ctx: ContainerContext, args: dict, outcome: dict | None) -> None:
    host.unmount(args["target"])
    if not os.path.islink(args["dir"]):   # a symlink planted there is not ours to remove
        host.remove_tree(args["dir"])
    if args["default"]:
        _remove_host_view(args["source"], args["binds"])


def _remove_host_view(source: str, binds: list[str]) -> None:
    """Unmount and remove a default rootfs, and rootfs/ once it is empty."""
    for name in reversed(binds):
        host.unmount(os.path.join(source, name))
    host.remove_tree(source)
    try:
        os.rmdir(os.path.dirname(source))
    except OSError:
        pass   # gone already, or another container's rootfs is still there


def _plan_volume(index: int, ctx: ContainerContext) -> dict:
    mnt = _config(ctx).mounts[index]
    return {"source": mnt.source, "destination": mnt.destination, "readonly": mnt.readonly,
            "target": str(ctx.layout.volume_target(ctx.container_id, mnt.destination))}


def _mount_volume(ctx: ContainerContext, args: dict) -> dict:
    source, target = args["source"], args["target"]
    if not os.path.exists(source):
        raise FileNotFoundError(f"volume source {source!r} does not exist")
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        with open(target, "a"):
            pass
    host.bind_mount(source, target, readonly=args["readonly"], within=ctx.layout.mounts)
    return {"acquired": [mount_resource(target, container=ctx.container_id, role="volume",
                                        destination=args["destination"])]}


def _unmount_volume(ctx: ContainerContext, args: dict, outcome: dict | None) -> None:
    target = args["target"]
    host.unmount(target)
    if os.path.isdir(target) and not os.path.islink(target):
        host.remove_tree(target)
    elif os.path.lexists(target):
        os.unlink(target)


def _plan_guest_container(ctx: ContainerContext) -> dict:
    cfg = _config(ctx)
    volumes = {r.args["destination"]: ctx.guest_path(r.args["target"]) for r in ctx.records
               if r.step == "mount_volume" and r.outcome is not None}
    return guest_request(cfg, ctx.host.config, ctx.sandbox_id, volumes,
                         attached(ctx.records))


# The reference guest agent launches containers with runc, which applies seccomp: the
# seed's rule (disable_guest_seccomp) alone decides whether the profile crosses the wire.
GUEST_SECCOMP_SUPPORTED = True


def oci_mounts(cfg: ContainerConfig) -> list[dict]:
    """The container's mounts as OCI mounts (host sources, before any rewriting)."""
    return [{"destination": mnt.destination, "type": mnt.type, "source": mnt.source,
             "options": [*(["rbind"] if mnt.type == "bind" else []),
                         "ro" if mnt.readonly else "rw", *mnt.options]}
            for mnt in cfg.mounts]


def _block_destinations(cfg: ContainerConfig) -> frozenset[str]:
    return frozenset(dest for _, dest in cfg.drives()[2])


def shared_volumes(cfg: ContainerConfig) -> list[int]:
    """Indexes of the mounts the host binds into the shared dir (the seed's rules: bind
    mounts, not /proc or /sys sources, not /dev/shm, not block volumes, not host devices)."""
    chosen = {s.destination for s in shared_mounts(
        cfg.id, oci_mounts(cfg), block_destinations=_block_destinations(cfg),
        is_regular_file=os.path.isfile)}
    return [i for i, mnt in enumerate(cfg.mounts) if mnt.destination in chosen]


def _ignored_sources(cfg: ContainerConfig) -> frozenset[str]:
    """Host devices bound in by the caller: the guest never sees them (removeIgnoredOCIMount)."""
    block = _block_destinations(cfg)
    return frozenset(
        mnt.source for mnt in cfg.mounts
        if mnt.type == "bind" and not is_system_mount(mnt.source)
        and mnt.destination != "/dev/shm" and mnt.destination not in block
        and is_host_device(mnt.destination, os.path.isfile))


def guest_request(cfg: ContainerConfig, conf: RuntimeConfig, sandbox_id: str,
                  volumes: Mapping[str, str], device_paths: Mapping[str, str] | None = None
                  ) -> dict:
    """CreateContainer's spec, storages and devices as the seed builds them, as plain data.

    `volumes` maps a shared volume's destination to its guest path, `device_paths`
    a drive attached on the host to its device path. Raises ValueError (GuestSpecError)
    naming what in `cfg` the rules cannot turn into a request.
    """
    driver = conf.hypervisor.block_device_driver
    rootfs_drive, devices, block_volumes = cfg.drives()
    storages = []
    if rootfs_drive is not None:
        rootfs_driver, rootfs_drive = as_attached(driver, rootfs_drive, device_paths or {})
        storages.append(rootfs_storage(rootfs_driver, rootfs_drive,
                                       container_root_parent(cfg.id),
                                       disabled=conf.hypervisor.disable_block_device_use))
    mounts = handle_shm(oci_mounts(cfg), conf.hypervisor.shm_size)
    mounts, ephemeral = ephemeral_storages(mounts)
    resources = ((cfg.oci or {}).get("linux") or {}).get("resources") or {}
    mounts, hugepages = hugepage_storages(mounts, resources.get("hugepageLimits") or ())
    mounts, local = local_storages(mounts, sandbox_id)
    at = {mnt.get("destination"): mnt for mnt in mounts}
    mounts, drives = relocate_block_volumes(mounts, [
        block_volume_storage(driver, dev, dest, at.get(dest)) for dev, dest in block_volumes])
    mounts = replace_mount_sources(mounts, volumes)
    mounts = remove_ignored_mounts(mounts, _ignored_sources(cfg))
    spec, sandbox_pidns = constrain_spec(
        oci_spec(cfg, mounts), guest_seccomp_enabled=not conf.runtime.disable_guest_seccomp,
        guest_seccomp_supported=GUEST_SECCOMP_SUPPORTED)
    shares_agent_pidns, warning = agent_pidns(spec["process"]["env"],
                                              enabled=conf.runtime.enable_agent_pidns)
    convert.oci_spec_to_proto(spec)  # a spec the wire cannot carry fails here, named
    return {
        "spec": spec,
        "storages": [_plain(s) for s in (*storages, *ephemeral, *hugepages, *local, *drives)],
        "devices": [_plain(d) for d in container_devices(driver, [*devices, *block_volumes])],
        "sandbox_pidns": sandbox_pidns, "agent_pidns": shares_agent_pidns,
        "warnings": [warning] if warning and not shares_agent_pidns else [],
    }


def _plain(msg: Any) -> dict:
    return MessageToDict(msg, preserving_proto_field_name=True)


def oci_spec(cfg: ContainerConfig, mounts: list[dict]) -> dict:
    """The OCI spec before the seed's constraints: the caller's, with the process, root
    (its guest path) and `mounts` (already rewritten to guest paths) filled in."""
    spec = dict(cfg.oci or {})
    spec["ociVersion"] = spec.get("ociVersion", "1.0.2")
    spec["process"] = {
        **spec.get("process", {}), "terminal": cfg.terminal, "args": list(cfg.args),
        "env": convert.env_list(cfg.env), "cwd": cfg.cwd,
        "user": oci_user(cfg.user)}
    # The default rootfs is the host's own file system: read-only, always; a rootfs in an
    # attached image is as writable as its drive.
    drive = cfg.rootfs_device or {}
    readonly = (cfg.rootfs is None and not drive.get("image")) or bool(drive.get("read_only")) \
        or bool((spec.get("root") or {}).get("readonly"))
    spec["root"] = {"path": container_root_path(cfg.id), "readonly": readonly}
    spec["hostname"] = cfg.hostname or spec.get("hostname", "")
    spec["mounts"] = mounts
    spec["annotations"] = {**spec.get("annotations", {}), **cfg.annotations}
    return spec


def oci_user(text: str) -> dict:
    """`"uid[:gid]"` as the OCI process user (ValueError naming a malformed value)."""
    user = convert.oci_user(text)
    return {"uid": user.UID, "gid": user.GID}


def _create_guest_container(ctx: ContainerContext, args: dict) -> dict:
    storages = [ParseDict(s, m.agent.Storage()) for s in args.get("storages", ())]
    ctx.agent().create_container(
        ctx.container_id, convert.oci_spec_to_proto(args["spec"]), storages=storages,
        devices=[ParseDict(d, m.agent.Device()) for d in args.get("devices", ())],
        sandbox_pidns=bool(args.get("sandbox_pidns")),
        agent_pidns=bool(args.get("agent_pidns")))
    return {"container": ctx.container_id, "storages": [s.driver for s in storages],
            "devices": len(args.get("devices", ())),
            "sandbox_pidns": bool(args.get("sandbox_pidns")),
            "agent_pidns": bool(args.get("agent_pidns")), "warnings": args.get("warnings", [])}


def _remove_guest_container(ctx: ContainerContext, args: dict, outcome: dict | None) -> None:
    tolerate_gone(lambda: ctx.agent().remove_container(ctx.container_id))


def create(config: ContainerConfig) -> Operation:
    volumes = tuple(
        Step("mount_volume", Ev.VOLUME_MOUNTED, _mount_volume, _unmount_volume,
             partial(_plan_volume, i))
        for i in shared_volumes(config))
    return Operation(Op.CREATE_CONTAINER, Trigger.CREATE, (
        Step("mount_rootfs", Ev.ROOTFS_MOUNTED, _mount_rootfs, _unmount_rootfs, _plan_rootfs),
        *volumes,
        *attach_steps(config),
        Step("create_container_in_guest", Ev.CONTAINER_CREATED, _create_guest_container,
             _remove_guest_container, _plan_guest_container),
    ))


# -- start / stop / delete --------------------------------------------------------------

def _start_guest_container(ctx: ContainerContext, args: dict) -> dict:
    ctx.agent().start_container(ctx.container_id)
    return {"container": ctx.container_id}


def _kill_all(ctx: ContainerContext, args: dict, outcome: dict | None = None) -> dict:
    tolerate_gone(lambda: ctx.agent().signal_process(ctx.container_id, signal.SIGKILL, all=True))
    return {"container": ctx.container_id}


def _remove_in_guest(ctx: ContainerContext, args: dict) -> dict:
    tolerate_gone(lambda: ctx.agent().remove_container(ctx.container_id))
    return {"container": ctx.container_id}


def _unmount_container(ctx: ContainerContext, args: dict) -> dict:
    released = []
    for res in sorted(ctx.mounts(ctx.container_id), key=lambda r: r["role"] == "rootfs"):
        host.unmount(res["path"])
        released.append(res["key"])
    host.remove_tree(ctx.layout.container_dir(ctx.container_id))
    _remove_host_view(str(_host_view_dir(ctx, ctx.container_id)), [])
    return {"container": ctx.container_id, "released": released}


def _recorded_create(ctx: ContainerContext) -> dict:
    """The CreateContainer intent recorded for this container (its latest create)."""
    events = ctx.host.events(ctx.sandbox_id)
    op = next(e.data["op"] for e in reversed(events)
              if e.type == Ev.CONTAINER_CREATED and e.data.get("container") == ctx.container_id)
    return next(e.data["args"] for e in events if e.type == Ev.STEP_STARTED
                and e.data["op"] == op and e.data["step"] == "create_container_in_guest")


def _unstart(ctx: ContainerContext, args: dict, outcome: dict | None) -> None:
    """Back to `created`: a started container cannot be un-started in the guest, so end
    its processes, remove it and create it again from the recorded request."""
    _kill_all(ctx, args)
    tolerate_gone(lambda: ctx.agent().remove_container(ctx.container_id))
    _create_guest_container(ctx, _recorded_create(ctx))


START = Operation(Op.START_CONTAINER, Trigger.START, (
    Step("start_container_in_guest", Ev.CONTAINER_STARTED, _start_guest_container, _unstart),
))

STOP = Operation(Op.STOP_CONTAINER, Trigger.STOP, (
    Step("signal_container", Ev.CONTAINER_STOPPED, _kill_all),
    Step("remove_container_in_guest", Ev.CONTAINER_REMOVED, _remove_in_guest),
), on_crash="forward")

DELETE = Operation(Op.DELETE_CONTAINER, Trigger.DELETE, (
    Step("unmount_container_mounts", Ev.CONTAINER_MOUNTS_UNMOUNTED, _unmount_container),
    DETACH_DEVICES,
), on_crash="forward")
