"""An OCI bundle for runc, written from the spec CreateContainer received.

The host sends what the caller asked for, after the seed's constraints; what makes a
container contain is filled in here with runc's own defaults (`runc spec`): new PID,
mount, IPC and UTS namespaces, a fresh /proc, a minimal /dev, masked and read-only
kernel paths, a capability set, no_new_privs, and a device cgroup that denies all but
runc's default devices. The network namespace stays the guest's (as in Kata). Choices
that would reach outside the container are the agent's, never the caller's: the cgroup
path, the devices, the kinds of mounts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_io.guest.paths import GuestPaths, PathRefused

NAMESPACES = ("pid", "ipc", "uts", "mount")
# containerd's and Docker's default set: what users of containers expect as root.
DEFAULT_CAPS = [f"CAP_{c}" for c in (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")]
MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/proc/scsi"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_DEV = ["nosuid", "noexec", "nodev"]
SYSTEM_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": _DEV},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": [*_DEV, "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": _DEV},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*_DEV, "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": [*_DEV, "relatime", "ro"]},
]
# A read-only root still needs somewhere to write.
SCRATCH = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
           "options": ["nosuid", "nodev", "mode=1777"]}
# Kernel file systems a caller may add; proc, sysfs and cgroup stay the agent's (read-only).
CALLER_FS_TYPES = ("tmpfs", "devpts", "mqueue")
BIND_TYPES = ("bind", "local")
INIT_PATH = "/dev/.sbx-init"
DEFAULT_RLIMITS = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]


@dataclass(frozen=True)
class Identity:
    """Who a process runs as, after the StringUser override."""

    uid: int
    gid: int
    groups: list[int]


def process_json(proc: dict[str, Any], ident: Identity, env: list[str],
                 caps: dict[str, Any] | None, init: bool) -> dict[str, Any]:
    """The OCI process runc runs: the caller's, with the agent's safety defaults."""
    size = proc.get("consoleSize") or {}
    out: dict[str, Any] = {
        "terminal": bool(proc.get("terminal")),
        "user": {"uid": ident.uid, "gid": ident.gid, "additionalGids": ident.groups},
        "args": [INIT_PATH, "--", *proc["args"]] if init else list(proc["args"]),
        "env": env, "cwd": proc.get("cwd") or "/",
        "capabilities": caps or {k: list(DEFAULT_CAPS) for k in
                                 ("bounding", "effective", "permitted")},
        "rlimits": proc.get("rlimits") or DEFAULT_RLIMITS,
        "noNewPrivileges": True,
    }
    if out["terminal"] and size.get("height") and size.get("width"):
        out["consoleSize"] = {"height": size["height"], "width": size["width"]}
    if "oomScoreAdj" in proc:
        out["oomScoreAdj"] = proc["oomScoreAdj"]
    return out


def _bind(mnt: dict[str, Any], paths: GuestPaths, what: str) -> dict[str, Any] | None:
    """A bind whose guest source exists, with its host source; None when it does not."""
    source = paths.host(mnt.get("source", ""), f"{what} source")
    if not source.exists():
        return None
    options = [o for o in mnt.get("options", []) if o not in ("bind", "rbind")]
    return {"destination": mnt["destination"], "type": "bind", "source": str(source),
            "options": ["rbind", *options]}


def caller_mounts(mounts: Iterable[dict[str, Any]], paths: GuestPaths,
                  where: str) -> list[dict[str, Any]]:
    """The spec's mounts runc may make: binds of guest paths and a few kernel file systems."""
    out = []
    for mnt in mounts:
        dest, kind = mnt.get("destination", ""), mnt.get("type", "")
        what = f"{where}: mount {dest!r}"
        if not dest.startswith("/"):
            raise PathRefused(f"{what}: destination is not absolute")
        if kind in BIND_TYPES or {"bind", "rbind"} & set(mnt.get("options", [])):
            bound = _bind(mnt, paths, what)
            if bound is not None:
                out.append(bound)
        elif kind in CALLER_FS_TYPES:
            out.append({k: mnt[k] for k in ("destination", "type", "source", "options")
                        if k in mnt})
    return out


def mounts_for(caller: list[dict[str, Any]], readonly_root: bool,
               init: Path | None) -> list[dict[str, Any]]:
    """runc's system mounts, unless the caller mounts the same destination, then theirs."""
    taken = {m["destination"].rstrip("/") for m in caller}
    system = [m for m in SYSTEM_MOUNTS if m["destination"] not in taken]
    if readonly_root and "/tmp" not in taken:
        system.append(SCRATCH)
    if init is not None:
        system.append({"destination": INIT_PATH, "type": "bind", "source": str(init),
                       "options": ["bind", "ro", "nosuid", "nodev"]})
    return [*system, *caller]


def config_json(spec: dict[str, Any], process: dict[str, Any], rootfs: Path, *,
                readonly: bool, mounts: list[dict[str, Any]],
                cgroups_path: str) -> dict[str, Any]:
    """config.json: the agent's container, from the caller's spec."""
    linux = spec.get("linux") or {}
    resources = dict(linux.get("resources") or {})
    resources["devices"] = [{"allow": False, "access": "rwm"}]
    out_linux: dict[str, Any] = {
        "namespaces": [{"type": t} for t in NAMESPACES],
        "maskedPaths": sorted({*MASKED, *linux.get("maskedPaths", [])}),
        "readonlyPaths": sorted({*READONLY, *linux.get("readonlyPaths", [])}),
        "cgroupsPath": cgroups_path,
        "resources": resources,
    }
    if linux.get("seccomp"):
        out_linux["seccomp"] = linux["seccomp"]
    # net.* sysctls belong to a network namespace, and the container shares the guest's
    # (runc refuses them there; Docker sets net.ipv4.ip_unprivileged_port_start)
    sysctl = {k: v for k, v in (linux.get("sysctl") or {}).items() if not k.startswith("net.")}
    if sysctl:
        out_linux["sysctl"] = sysctl
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(rootfs), "readonly": readonly},
        "hostname": spec.get("hostname", ""),
        "mounts": mounts,
        "linux": out_linux,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """A private file (0600): runc reads the spec from a file, never from argv."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
