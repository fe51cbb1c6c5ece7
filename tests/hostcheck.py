"""Host checks shared by every suite that starts sandboxes: what was left, and scrubbing it.

Teardown does not trust the code under test: it finds processes by the test's dir on their
command line and mounts under it in /proc/self/mountinfo, and removes them by itself.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sandbox_fsm import RuntimeConfig
from sandbox_fsm.drivers import guestimage
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


BUSYBOX = Path("/bin/busybox")


def busybox_tree(root: Path) -> Path:
    """A minimal root filesystem: busybox-static and a link for each of its applets."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("tmp", "proc", "dev", "sys", "etc"):
        (root / name).mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (root / "bin" / applet).exists():
            os.symlink("busybox", root / "bin" / applet)
    return root


INIT_COMM = ".sbx-init"  # the agent's container init, as /proc/<pid>/comm names it


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def freezer_state(pid: int) -> str:
    """The freezer state of a process's cgroup (v1 freezer.state, v2 cgroup.freeze)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            return Path(f"/sys/fs/cgroup/freezer{path}/freezer.state").read_text().strip()
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            frozen = Path(f"/sys/fs/cgroup{path}/cgroup.freeze").read_text().strip()
            return "FROZEN" if frozen == "1" else "THAWED"
    raise AssertionError(f"pid {pid} is in no freezer cgroup")


def command_pids(list_pids: Callable[[], list[int]], count: int = 1) -> list[int]:
    """A container's processes but its init (tini, pid 1 inside, runs the command) and
    runc's own, once at least `count` are there (the init starts the command)."""
    deadline = time.monotonic() + 20
    while True:
        found = [p for p in list_pids() if comm(p) != INIT_COMM and not comm(p).startswith("runc")]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


REPO = Path(__file__).resolve().parents[1]
# The qemu driver's guest image for tests: built once (`make guest-image` or the first VM
# test) and reused across runs while its inputs are unchanged.
IMAGE_CACHE = Path(os.environ.get("SBX_TEST_IMAGE_CACHE", REPO / "build" / "guest-images"))


def make_config(driver: str = "namespaces", *, tracing: bool = False,
                **proxy: str) -> RuntimeConfig:
    """A runtime configuration for tests; `tracing` turns on dynamic agent tracing (the
    optional start_tracing/stop_tracing steps). The qemu driver boots the cached image."""
    base = RuntimeConfig.default()
    hypervisor = dataclasses.replace(base.hypervisor, driver=driver)
    if driver == "qemu":
        image = guestimage.ensure(IMAGE_CACHE)
        hypervisor = dataclasses.replace(hypervisor, initrd=str(image.path),
                                         kernel=image.kernel.path, boot_timeout=180.0)
    return dataclasses.replace(
        base, hypervisor=hypervisor, proxy=dataclasses.replace(base.proxy, **proxy),
        agent=dataclasses.replace(base.agent, trace=tracing, trace_mode="dynamic"))
