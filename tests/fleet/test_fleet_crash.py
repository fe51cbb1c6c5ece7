"""Exactly once, in order, per host: across shipper SIGKILLs, nats-server restarts and
the loss of a node of a three-node JetStream cluster, while the host keeps writing."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time

import nats
import nats.errors
import nats.js.errors
from fleetkit import assert_exactly_once

from eventstore import EventStore

# The issue asks for 50 kills; SBX_FLEET_KILLS changes it (each costs about 0.6 s).
KILLS = int(os.environ.get("SBX_FLEET_KILLS", "50"))


def _stream_count(url: str) -> int:
    """Messages in the stream (0 before it exists), from the server's stream info."""
    async def ask() -> int:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            return (await nc.jetstream().stream_info("SBX_EVENTS")).state.messages
        except nats.js.errors.NotFoundError:
            return 0
        finally:
            await nc.close()
    return asyncio.run(ask())


def _log_count(host) -> int:
    with EventStore.open(host.state / "events", readonly=True) as store:
        return store.last_position() + 1


def _stream_count_retrying(url: str) -> int:
    """The count, or -1 while the server (or a cluster electing a leader) does not answer."""
    try:
        return _stream_count(url)
    except (nats.errors.Error, TimeoutError, OSError):
        return -1


def _wait_count(url: str, want: int, timeout: float = 60, exact: bool = True) -> None:
    """Until the stream holds `want` messages (at least `want` unless exact)."""
    deadline = time.monotonic() + timeout
    while (got := _stream_count_retrying(url)) != want and (exact or got < want):
        assert time.monotonic() < deadline, f"stream holds {got} of {want} events"
        time.sleep(0.2)


def test_shipper_sigkilled_at_random_points_ships_each_event_once(hosts, nats_server):
    host, url = hosts[0], nats_server.url
    writer = host.writer(rate=1500)
    rng = random.Random()
    behind = 0          # kills that found events not yet in the stream
    for _ in range(KILLS):
        shipper = host.popen("ship", "--nats", url)
        time.sleep(rng.uniform(0.25, 0.9))   # from start-up to mid-stream
        shipper.kill()
        shipper.wait()
        behind += _stream_count(url) < _log_count(host)
    host.stop(writer)
    done = json.loads(host.ok("ship", "--nats", url, "--until-caught-up", "--json").stdout)
    total = assert_exactly_once(url, host)
    assert done["shipped"] == total - 1 and done["reconnects"] == 0
    print(f"{KILLS} SIGKILLs, {behind} with events not yet shipped, {total} events")
    assert behind > 0 and total > 1000


def test_nats_server_restarts_while_shipping(hosts, nats_server, tmp_path):
    host, url = hosts[0], nats_server.url
    writer = host.writer(rate=800)
    out = tmp_path / "ship.json"
    with open(out, "w") as f:
        shipper = host.popen("ship", "--json", "--nats", url, stdout=f)
    for sig in (signal.SIGKILL, signal.SIGTERM, None):
        _wait_count(url, _stream_count_retrying(url) + 200, exact=False)  # shipping now
        if sig is not None:
            nats_server.restart(sig)
    host.stop(writer)
    _wait_count(url, _log_count(host))
    assert shipper.poll() is None                  # the same shipper rode both restarts
    assert host.stop(shipper) == 0
    status = json.loads(out.read_text())
    assert status["reconnects"] >= 2
    assert assert_exactly_once(url, host) == status["shipped"] + 1


def _cluster_ready(url: str) -> None:
    async def probe() -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                nc = await nats.connect(url, allow_reconnect=False)
                try:      # every peer is in: an R3 stream can be placed
                    js = nc.jetstream()
                    await js.add_stream(name="PROBE", subjects=["probe"], num_replicas=3)
                    await js.delete_stream("PROBE")
                    return
                finally:
                    await nc.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
    asyncio.run(probe())


def _stream_leader(url: str) -> tuple[str, int]:
    async def ask() -> tuple[str, int]:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            info = await nc.jetstream().stream_info("SBX_EVENTS")
            return info.cluster.leader, info.config.num_replicas
        finally:
            await nc.close()
    return asyncio.run(ask())


def test_cluster_of_three_loses_a_node_while_shipping(hosts, nats_cluster, tmp_path):
    host = hosts[0]
    urls = [n.url for n in nats_cluster]
    _cluster_ready(urls[0])
    config = tmp_path / "fleet.toml"
    config.write_text(f'[fleet]\nnats_url = "{",".join(urls)}"\nreplicas = 3\n')
    writer = host.writer(rate=800)
    shipper = host.popen("--config", str(config), "ship")
    deadline = time.monotonic() + 30
    while not _stream_count(urls[0]):
        assert time.monotonic() < deadline and shipper.poll() is None
        time.sleep(0.2)
    leader, replicas = _stream_leader(urls[0])
    assert replicas == 3
    victim = next(n for n in nats_cluster if n.name == leader)
    time.sleep(0.5)
    victim.stop(signal.SIGKILL)                    # the stream's leader, mid-shipping
    survivor = next(n for n in nats_cluster if n is not victim).url
    time.sleep(2)
    host.stop(writer)
    _wait_count(survivor, _log_count(host))
    assert shipper.poll() is None
    assert host.stop(shipper) == 0
    assert assert_exactly_once(survivor, host) > 1000
    assert _stream_leader(survivor)[0] != leader
