"""OCI bind mounts made visible inside a chrooted container (what libcontainer would do).

A container whose root holds a rootfs runs chrooted there, so a volume the host rewrote to
a guest path (a shared-dir bind, an ephemeral tmpfs, a local dir, the sandbox shm) must be
bound onto its destination inside that root. Without a rootfs the container sees the
guest's own file system and the storage already exists at its guest path.
"""

from __future__ import annotations

from pathlib import Path

from agent_io import messages as m
from agent_io.guest.paths import GuestPaths, confined
from agent_io.guest.storage import Prepared, Storages

# A local volume keeps its type; its source is the directory the local storage made.
BOUND_TYPES = ("bind", "local")


# What a chrooted container needs from the guest, as libcontainer would give it.
SYSTEM_MOUNTS = (("proc", "proc"), ("dev", "dev"), ("sys", "sys"), ("tmpfs", "tmp"))


def system_mounts(root: Path, storages: Storages, where: str) -> list[Prepared]:
    """/proc (the guest's PID namespace), /dev, /sys and a private /tmp in the rootfs."""
    done: list[Prepared] = []
    try:
        for fstype, name in SYSTEM_MOUNTS:
            prepared = storages.special(fstype, confined(root, "/" + name, where), where)
            if prepared is not None:
                done.append(prepared)
    except BaseException:
        storages.release(done)
        raise
    return done


def oci_binds(oci: m.oci.Spec, root: Path, paths: GuestPaths, storages: Storages,
              where: str) -> list[Prepared]:
    """Bind each OCI bind mount whose guest source exists onto root/destination."""
    done: list[Prepared] = []
    try:
        for mnt in oci.Mounts:
            options = set(mnt.options)
            if mnt.type not in BOUND_TYPES and not options & {"bind", "rbind"}:
                continue
            what = f"{where}: mount {mnt.destination!r}"
            source = paths.host(mnt.source, f"{what} source")
            if not source.exists():
                continue
            target = confined(root, mnt.destination, f"{what} destination")
            done.append(storages.bind(source, target, "ro" in options, what))
    except BaseException:
        storages.release(done)
        raise
    return done
