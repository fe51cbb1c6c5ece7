"""Suite-wide rules: root-only tests run as root and never silently skip in CI."""

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "root: needs root (mounts, namespaces); fails in CI if not root")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("root-only test cannot run: CI must run as root")
        pytest.skip("needs root")
