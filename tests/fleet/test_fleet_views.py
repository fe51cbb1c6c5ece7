"""Three hosts run real lifecycles and ship at the same time; the fleet views read from
the stream alone agree with each host's own `list` and `audit`."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fleetkit import assert_exactly_once, stream_messages

FAULT = json.dumps([{"rpc": "CreateContainer", "nth": 1, "action": "error",
                     "code": "INTERNAL"}])


def _host_life(host, i: int, url: str, shippers: dict, errors: list) -> None:
    """A first lifecycle, then a follow-mode shipper, then more lifecycles while it runs."""
    try:
        _lifecycles(host, i, url, shippers)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def _lifecycles(host, i: int, url: str, shippers: dict) -> None:
    host.ok("run", "--id", f"web{i}", "--", "true")
    shippers[i] = host.popen("ship", "--nats", url)
    host.ok("run", "--id", f"kept.{i}", "--keep", "--", "echo", "hi")
    bad = host("run", "--id", f"bad{i}", "--", "true", env={"SBX_AGENT_FAULTS": FAULT})
    assert bad.returncode == 1
    host.ok("run", "--id", f"last{i}", "--", "true")


def _wait_shipped(url: str, hosts: list, timeout: float = 60) -> None:
    want = {h.host_id(): len(h.hashes()) for h in hosts}
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, int] = {}
        for host_id, _, _, _ in stream_messages(url):
            got[host_id] = got.get(host_id, 0) + 1
        if got == want or time.monotonic() > deadline:
            assert got == want
            return
        time.sleep(0.3)


@pytest.mark.root
def test_three_hosts_ship_concurrently_and_fleet_views_match(hosts, nats_server):
    url = nats_server.url
    shippers: dict = {}
    errors: list = []
    runs = [threading.Thread(target=_host_life, args=(h, i, url, shippers, errors))
            for i, h in enumerate(hosts)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert not errors and len(shippers) == 3
    _wait_shipped(url, hosts)
    for i, h in enumerate(hosts):
        assert h.stop(shippers[i]) == 0                      # SIGTERM: a clean stop
    ids = [h.host_id() for h in hosts]
    assert len(set(ids)) == 3

    for hid, h in zip(ids, hosts, strict=True):
        assert_exactly_once(url, h)
        mine = h.json("list")
        theirs = h.json("fleet", "list", "--nats", url, "--host", hid)
        assert [{k: v for k, v in r.items() if k != "host"} for r in theirs] == mine
        assert {r["host"] for r in theirs} == {hid}
        for row in mine:
            assert h.json("fleet", "audit", "--nats", url, hid, row["id"]) == \
                h.json("audit", row["id"])
    i, h = 1, hosts[1]
    assert h.json("fleet", "audit", "--nats", url, ids[i], f"kept.{i}", "--at", "9999") == \
        h.json("audit", f"kept.{i}", "--at", "9999")
    everyone = hosts[0].json("fleet", "list", "--nats", url)
    assert len(everyone) == sum(len(h.json("list")) for h in hosts) == 12
    assert {r["state"] for r in everyone if r["id"].startswith("kept")} == {"running"}
    text = hosts[0].ok("fleet", "list", "--nats", url).stdout
    assert text.splitlines()[0].split() == ["HOST", "ID", "STATE", "CONTAINERS", "CREATED"]
    exported = hosts[2].ok("fleet", "export", "--nats", url, "--host", ids[2]).stdout
    assert [json.loads(line)["hash"] for line in exported.splitlines()] == hosts[2].hashes()
    for i, h in enumerate(hosts):
        h.ok("delete", f"kept.{i}", "--force")
