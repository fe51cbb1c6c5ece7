"""Fixtures for lifecycle tests: a real runtime on real dirs, and a host left clean.

Teardown does not trust the code under test: it kills every process whose command line
names the test's runtime dir (guest agents, proxies) by pid and detaches every mount
under it, then fails the test if anything had been left behind by a passing test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostcheck import make_config, scrub

from sandbox_fsm import Runtime, RuntimeConfig


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    state, run = tmp_path / "state", tmp_path / "run"
    yield state, run
    mounts, pids = scrub(tmp_path)
    assert not mounts and not pids, f"test left mounts {mounts} and processes {pids}"


@pytest.fixture(params=["namespaces", "process"])
def driver(request: pytest.FixtureRequest) -> str:
    if request.param == "namespaces" and os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the namespaces driver needs root, and CI runs as root")
        pytest.skip("the namespaces driver needs root")
    return request.param


@pytest.fixture
def runtime(dirs: tuple[Path, Path]) -> Iterator[Runtime]:
    state, run = dirs
    rt = Runtime.open(state, run, make_config("process"))
    yield rt
    rt.close()


@pytest.fixture
def open_rt(dirs: tuple[Path, Path]) -> Iterator:
    """`open_rt(config)` or `open_rt(driver, **proxy)` opens a runtime on the test's dirs;
    every one opened is closed at teardown."""
    opened: list[Runtime] = []

    def opener(config: RuntimeConfig | str = "process", **proxy: str) -> Runtime:
        if isinstance(config, str):
            config = make_config(config, **proxy)
        rt = Runtime.open(dirs[0], dirs[1], config)
        opened.append(rt)
        return rt

    yield opener
    for rt in opened:
        rt.close()
