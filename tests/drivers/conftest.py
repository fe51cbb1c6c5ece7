"""Fixtures for the qemu driver: the guest image (built once, cached across runs) and a
booted VM with its proxy shared by a module's tests (a TCG boot costs ~15 s here).

Teardown does not trust the driver: whatever still names the test's dir on its command
line is killed by the fixture itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostcheck import scrub
from vmkit import BootedVm, private_dir, spec_for

from sandbox_fsm import host
from sandbox_fsm.drivers import guestimage, qemu

REPO = Path(__file__).resolve().parents[2]
IMAGE_CACHE = Path(os.environ.get("SBX_TEST_IMAGE_CACHE", REPO / "build" / "guest-images"))


@pytest.fixture(scope="session")
def guest_image() -> guestimage.GuestImage:
    """The guest initramfs for the host's newest kernel, built only when inputs changed."""
    return guestimage.ensure(IMAGE_CACHE)


@pytest.fixture(scope="module")
def booted(guest_image: guestimage.GuestImage) -> Iterator[BootedVm]:
    base = private_dir("sbx-vm-")
    for sub in ("sock", "log", "shared"):
        (base / sub).mkdir(mode=0o700)
    paths = qemu.VmPaths.under(base / "sock", base / "log")
    spec = spec_for(guest_image, base / "shared")
    vm = qemu.launch(qemu.argv(spec, paths, "sbx-test"), paths)
    booted = BootedVm(base, vm, None, str(base / "sock" / "proxy.sock"), base / "shared",
                      guest_image.kernel.release)
    try:
        booted.start_proxy()
        yield booted
    finally:
        if booted.proxy is not None:
            host.terminate(booted.proxy)
        qemu.stop(vm)
        found = scrub(base)
        host.reap_children()
        shutil.rmtree(base, ignore_errors=True)
        assert found == ([], []), f"the VM test left {found}"
