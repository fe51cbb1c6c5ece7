"""Fixtures for the fleet tests: nats-servers by pid, hosts (fleetkit.Host) cleaned up
by pid and by scrubbing their dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import Host
from hostcheck import scrub
from natsproc import NatsServer, cluster


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Host]]:
    made = [Host(tmp_path, f"host{i}") for i in range(3)]
    try:
        yield made
    finally:
        for h in made:
            h.cleanup()
        mounts, pids = scrub(tmp_path)
        assert not mounts and not pids, f"test left mounts {mounts} and processes {pids}"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[list[NatsServer]]:
    nodes = cluster(tmp_path)
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
