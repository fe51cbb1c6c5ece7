"""Host mechanics of a sandbox: mounts, processes, directories and the proxy process.

Pure mechanics: nothing here knows about events or sagas. Every operation is safe to
repeat, and "already gone" is success, so compensations and recovery can call them freely.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .discover import find_by_argv, find_by_cmdline
    from .hostview import HostView, plan_host_view
    from .layout import (
        ID_PATTERN,
        InvalidId,
        SandboxLayout,
        StillMounted,
        check_socket_dir,
        ensure_private_dir,
        remove_tree,
        validate_id,
    )
    from .mounts import (
        MountError,
        MountInfo,
        UnsafePath,
        bind_mount,
        is_mounted,
        make_shared,
        mount_table,
        mounts_under,
        share_dir,
        tmpfs_mount,
        unmount,
        unshare_dir,
    )
    from .procs import (
        ProcessDied,
        ProcessIdentity,
        identity_of,
        is_alive,
        kill,
        reap_children,
        signal_process,
        spawn,
        terminate,
        wait_exit,
        wait_for_path,
    )

_HOME = {"find_by_argv": "discover", "find_by_cmdline": "discover", "HostView": "hostview",
         "plan_host_view": "hostview", "ID_PATTERN": "layout", "InvalidId": "layout",
         "SandboxLayout": "layout", "StillMounted": "layout", "check_socket_dir": "layout",
         "ensure_private_dir": "layout", "remove_tree": "layout", "validate_id": "layout",
         "MountError": "mounts", "MountInfo": "mounts", "UnsafePath": "mounts",
         "bind_mount": "mounts", "is_mounted": "mounts", "make_shared": "mounts",
         "mount_table": "mounts", "mounts_under": "mounts", "share_dir": "mounts",
         "tmpfs_mount": "mounts", "unmount": "mounts", "unshare_dir": "mounts",
         "ProcessDied": "procs", "ProcessIdentity": "procs", "identity_of": "procs",
         "is_alive": "procs", "kill": "procs", "reap_children": "procs",
         "signal_process": "procs", "spawn": "procs", "terminate": "procs",
         "wait_exit": "procs", "wait_for_path": "procs"}
"""Where each name lives: a submodule loads on first use (PEP 562), so `sbx list`,
which validates ids, never loads processes, sockets or subprocess."""

__all__ = [
    "ID_PATTERN",
    "InvalidId",
    "MountError",
    "MountInfo",
    "ProcessDied",
    "ProcessIdentity",
    "SandboxLayout",
    "StillMounted",
    "UnsafePath",
    "bind_mount",
    "check_socket_dir",
    "ensure_private_dir",
    "find_by_argv",
    "find_by_cmdline",
    "HostView",
    "plan_host_view",
    "identity_of",
    "is_alive",
    "is_mounted",
    "kill",
    "make_shared",
    "mount_table",
    "mounts_under",
    "proxy_argv",
    "reap_children",
    "remove_tree",
    "share_dir",
    "signal_process",
    "spawn",
    "terminate",
    "tmpfs_mount",
    "unmount",
    "unshare_dir",
    "validate_id",
    "wait_exit",
    "wait_for_path",
]


def __getattr__(name: str) -> Any:
    # Lazy: importing .proxy here would make `python -m sandbox_fsm.host.proxy` warn that
    # the module was already imported by its package.
    if name == "proxy_argv":
        from .proxy import proxy_argv

        return proxy_argv
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value
