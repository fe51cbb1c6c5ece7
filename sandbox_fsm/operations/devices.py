"""Drives backed by host image files, attached for real on the process/namespaces drivers.

A container whose rootfs drive names an `image` gets that file attached as a loop device
by a step of its create operation (`attach_device`); the guest agent mounts the device in
the guest's mount namespace at the drive's mount point. The device's tag, recorded in the
step's intent before the attach, names it in the kernel (host/loopdev.py), so the undo and
recovery detach exactly it, even when the attach's outcome never reached the log.

Every device is a ledger resource `device:<cid>/<drive>` (its tag, /dev path, backing
file), released by container delete, sandbox delete and the release of a lost sandbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import partial

from ..guestspec.blockdev import BlockDevice
from ..host import SandboxLayout, loopdev
from ..names import Ev, Kind
from ..saga import Step, StepRecord
from ..spec import ContainerConfig
from .context import OpContext

# A loop device is reached by its /dev path, as a virtio-blk drive without a PCI path is.
LOOP_BLOCK_DRIVER = "virtio-blk"
LOOP_DRIVERS = ("namespaces",)   # where the guest agent may mount in its own namespace


def check_driver(cfg: ContainerConfig, driver: str) -> None:
    """Refuse image drives where they cannot be attached (ValueError, before any event)."""
    if _image_drives(cfg) and driver not in LOOP_DRIVERS:
        raise ValueError(f"a drive with an 'image' needs the {' or '.join(LOOP_DRIVERS)} "
                         f"driver (this runtime uses {driver!r})")


def _image_drives(cfg: ContainerConfig) -> list[tuple[str, dict]]:
    """(role, drive entry) of each drive this container asks us to attach."""
    rootfs = cfg.rootfs_device
    return [("rootfs", dict(rootfs))] if rootfs and rootfs.get("image") else []


def attach_steps(cfg: ContainerConfig) -> tuple[Step, ...]:
    """One `attach_device` step per image drive of `cfg`."""
    return tuple(Step("attach_device", Ev.DEVICE_ATTACHED, _attach, _detach_undo,
                      partial(_plan_attach, role, entry))
                 for role, entry in _image_drives(cfg))


def tag_prefix(layout: SandboxLayout) -> str:
    """The tag prefix of every device of one sandbox of one runtime dir."""
    return f"{loopdev.TAG_PREFIX}{_digest(str(layout.root), 12)}:"


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _plan_attach(role: str, entry: dict, ctx: OpContext) -> dict:
    cid, drive = ctx.container_id or "", entry["id"]
    return {"tag": tag_prefix(ctx.layout) + _digest(f"{cid}\0{drive}", 16),
            "image": entry["image"], "read_only": bool(entry.get("read_only")),
            "drive": drive, "role": role, "container": cid}


def _attach(ctx: OpContext, args: dict) -> dict:
    dev = loopdev.attach(args["image"], args["tag"], read_only=args["read_only"])
    return {"path": dev.path, "acquired": [{
        "kind": Kind.DEVICE, "key": f"device:{args['container']}/{args['drive']}",
        "type": "loop", "tag": dev.tag, "path": dev.path, "backing_file": dev.backing_file,
        "container": args["container"], "drive": args["drive"], "role": args["role"]}]}


def _detach_undo(ctx: OpContext, args: dict, outcome: dict | None) -> None:
    loopdev.detach(args["tag"])


def attached(records: Iterable[StepRecord]) -> dict[str, str]:
    """Drive id -> /dev path of the devices this operation's steps attached."""
    return {r.args["drive"]: r.outcome["path"] for r in records
            if r.step == "attach_device" and r.outcome is not None}


def as_attached(driver: str, dev: BlockDevice, paths: Mapping[str, str]) -> tuple[str, BlockDevice]:
    """(block driver, drive) the guest is told about: an attached drive by its /dev path."""
    if dev.id not in paths:
        return driver, dev
    return LOOP_BLOCK_DRIVER, replace(dev, virt_path=paths[dev.id], pci_path="")


def detach_devices(ctx: OpContext, args: dict) -> dict:
    """Detach every device the ledger holds (of this container, in a container operation)
    by its tag; one already gone counts as detached."""
    released = []
    for res in list(ctx.state.ledger.values()):
        if res["kind"] == Kind.DEVICE and ctx.container_id in (None, res.get("container")):
            loopdev.detach(res["tag"])
            released.append(res["key"])
    return {"released": released}


DETACH_DEVICES = Step("detach_devices", Ev.DEVICES_DETACHED, detach_devices)


def reconcile(layout: SandboxLayout, ledger: dict) -> tuple[list[str], list[loopdev.LoopDevice]]:
    """(ledger keys of devices the kernel no longer has, devices of ours the ledger does
    not hold): what recovery records as gone and what it detaches."""
    ours = {d.tag: d for d in loopdev.find(tag_prefix(layout))}
    held = {r["tag"]: r["key"] for r in ledger.values() if r["kind"] == Kind.DEVICE}
    return ([key for tag, key in held.items() if tag not in ours],
            [d for tag, d in ours.items() if tag not in held])
