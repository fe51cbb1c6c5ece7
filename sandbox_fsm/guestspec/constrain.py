"""The OCI spec as the guest agent should see it (the seed's constrainGRPCSpec).

Host-side concerns (hooks, network and cgroup namespaces, systemd cgroups, VFIO group
nodes, SELinux labels) are handled on the host or make no sense in the guest, so they
are removed before the spec crosses the wire.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

VFIO_PATH = "/dev/vfio/"
DROPPED_NAMESPACES = ("network", "cgroup")
DROPPED_RESOURCES = ("devices", "pids", "blockIO", "hugepageLimits", "network")
AGENT_PIDNS_ENV = "KATA_AGENT_PIDNS"
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def is_systemd_cgroup(path: str) -> bool:
    """`slice:prefix:name` with a `.slice` first part is a systemd cgroup path."""
    parts = path.split(":")
    return len(parts) == 3 and parts[0].endswith(".slice")


def constrain_spec(
    spec: Mapping[str, Any],
    *,
    guest_seccomp_enabled: bool,
    guest_seccomp_supported: bool,
) -> tuple[dict[str, Any], bool]:
    """A constrained copy of `spec` and whether the container joins the sandbox PID ns.

    The PID namespace entry is removed; it had a path means "share a PID namespace",
    which in a VM can only mean the sandbox's.
    """
    out = copy.deepcopy(dict(spec))
    out.pop("hooks", None)
    linux = out.get("linux")
    process = out.get("process")
    if isinstance(process, dict) and process.get("selinuxLabel"):
        process["selinuxLabel"] = ""
    if not isinstance(linux, dict):
        return out, False
    if not (guest_seccomp_enabled and guest_seccomp_supported):
        linux.pop("seccomp", None)
    resources = linux.get("resources")
    if isinstance(resources, dict):
        for key in DROPPED_RESOURCES:
            resources.pop(key, None)
        cpu = resources.get("cpu")
        if isinstance(cpu, dict):
            cpu.pop("cpus", None)
            cpu.pop("mems", None)
    cgroups_path = linux.get("cgroupsPath", "")
    if is_systemd_cgroup(cgroups_path):
        _, prefix, name = cgroups_path.split(":")
        linux["cgroupsPath"] = posixpath.join("/", prefix, name)
    sandbox_pidns = False
    if "namespaces" in linux:
        linux["namespaces"], sandbox_pidns = _namespaces(linux["namespaces"] or [])
    if "devices" in linux:
        linux["devices"] = [
            dev
            for dev in linux["devices"] or []
            if not (dev.get("type") == "c" and dev.get("path", "").startswith(VFIO_PATH))
        ]
    return out, sandbox_pidns


def _namespaces(namespaces: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Drop network/cgroup, take out the first PID entry, and empty every other path."""
    kept, sandbox_pidns, pid_seen = [], False, False
    for ns in namespaces:
        if ns.get("type") in DROPPED_NAMESPACES:
            continue
        if ns.get("type") == "pid" and not pid_seen:
            pid_seen, sandbox_pidns = True, bool(ns.get("path"))
            continue
        kept.append({k: v for k, v in ns.items() if k != "path"})
    return kept, sandbox_pidns


def agent_pidns(env: Iterable[str], *, enabled: bool) -> tuple[bool, str | None]:
    """Whether the container shares the agent's PID namespace, and a warning to log.

    `KATA_AGENT_PIDNS=<bool>` in the container env asks for it (the last parseable value
    wins, as the seed); the runtime configuration must allow it.
    """
    wanted = False
    for entry in env:
        name, _, value = entry.partition("=")
        if name == AGENT_PIDNS_ENV and value in _TRUE + _FALSE:
            wanted = value in _TRUE
    if not wanted:
        return False, None
    if not enabled:
        return False, (f"{AGENT_PIDNS_ENV} is set in the container env but the runtime "
                       "configuration does not allow it ([runtime] enable_agent_pidns = false)")
    return True, "container will share the PID namespace of the agent"
