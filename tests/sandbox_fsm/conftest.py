"""Fixtures for lifecycle tests: a real runtime on real dirs, and a host left clean.

Teardown does not trust the code under test: it kills every process whose command line
names the test's runtime dir (guest agents, proxies) by pid and detaches every mount
under it, then fails the test if anything had been left behind by a passing test.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_fsm import Runtime, RuntimeConfig
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


def make_config(driver: str = "namespaces", **proxy: str) -> RuntimeConfig:
    base = RuntimeConfig.default()
    return dataclasses.replace(
        base, hypervisor=dataclasses.replace(base.hypervisor, driver=driver),
        proxy=dataclasses.replace(base.proxy, **proxy))


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    state, run = tmp_path / "state", tmp_path / "run"
    yield state, run
    mounts, pids = scrub(tmp_path)
    assert not mounts and not pids, f"test left mounts {mounts} and processes {pids}"


@pytest.fixture(params=["namespaces", "process"])
def driver(request: pytest.FixtureRequest) -> str:
    if request.param == "namespaces" and os.geteuid() != 0:
        pytest.skip("the namespaces driver needs root")
    return request.param


@pytest.fixture
def runtime(dirs: tuple[Path, Path]) -> Iterator[Runtime]:
    state, run = dirs
    rt = Runtime.open(state, run, make_config("process"))
    yield rt
    rt.close()
