"""Fixtures for the OCI-client tests: a busybox image built here, a private containerd
and dockerd per module, and `sbx` (the installed console script) as their runtime, with
runc as the baseline in the same run.

Teardown stops the daemons by pid, then checks that nothing is left under the module's
dir (no shim, guest, proxy, containerd shim or mount; tests/hostcheck.py), and scrubs
whatever is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import IMAGE, SBX, Containerd, Dockerd
from hostcheck import scrub
from image import build_image

pytestmark = pytest.mark.root


def _clean_after(root: Path, daemon: Containerd | Dockerd | None) -> None:
    if daemon is not None:
        daemon.stop()
    mounts, pids = scrub(root)
    assert not pids and not mounts, f"left processes {pids} and mounts {mounts}"
    assert daemon is None or not daemon.socket_dirs_left(), daemon.socket_dirs_left()


@pytest.fixture(scope="module")
def image_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_image(tmp_path_factory.mktemp("image") / "busybox.tar", IMAGE)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, image_tar: Path
               ) -> Iterator[Containerd]:
    root = tmp_path_factory.mktemp("cd")
    daemon = None
    try:
        daemon = Containerd(root)
        out = daemon.ctr("image", "import", str(image_tar))
        assert out.returncode == 0, out.stderr
        yield daemon
    finally:
        _clean_after(root, daemon)


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory, image_tar: Path) -> Iterator[Dockerd]:
    root = tmp_path_factory.mktemp("dk")
    daemon = None
    try:
        daemon = Dockerd(root, SBX)
        out = daemon.docker("load", "-i", str(image_tar))
        assert out.returncode == 0, out.stderr
        yield daemon
    finally:
        _clean_after(root, daemon)
