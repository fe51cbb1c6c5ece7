"""Host checks shared by every suite that starts sandboxes: what was left, and scrubbing it.

Teardown does not trust the code under test: it finds processes by the test's dir on their
command line and mounts under it in /proc/self/mountinfo, and removes them by itself.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
from pathlib import Path

from sandbox_fsm import RuntimeConfig
from sandbox_fsm.host import find_by_cmdline, mounts_under

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def leftovers(root: Path) -> tuple[list[str], list[int]]:
    """Mounts under root and pids of processes naming root, as the host shows them."""
    mounts = [m.mount_point for m in mounts_under(root)]
    pids = [p.pid for p in find_by_cmdline(str(root))]
    return mounts, pids


def scrub(root: Path) -> tuple[list[str], list[int]]:
    """Kill and unmount whatever is left under root; return what was found."""
    mounts, pids = leftovers(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    for point in reversed(mounts):
        _libc.umount2(os.fsencode(point), MNT_DETACH)
    return mounts, pids


def make_config(driver: str = "namespaces", *, tracing: bool = False,
                **proxy: str) -> RuntimeConfig:
    """A runtime configuration for tests; `tracing` turns on dynamic agent tracing (the
    optional start_tracing/stop_tracing steps)."""
    base = RuntimeConfig.default()
    return dataclasses.replace(
        base, hypervisor=dataclasses.replace(base.hypervisor, driver=driver),
        proxy=dataclasses.replace(base.proxy, **proxy),
        agent=dataclasses.replace(base.agent, trace=tracing, trace_mode="dynamic"))
