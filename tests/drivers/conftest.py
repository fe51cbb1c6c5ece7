"""Fixtures for the qemu driver: the guest image, built once and cached across runs."""

from __future__ import annotations

import pytest
from hostcheck import IMAGE_CACHE

from sandbox_fsm.drivers import guestimage


@pytest.fixture(scope="session")
def guest_image() -> guestimage.GuestImage:
    """The guest initramfs for the host's newest kernel, built only when inputs changed."""
    return guestimage.ensure(IMAGE_CACHE)
