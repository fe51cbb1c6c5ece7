"""Bad input: one line on stderr, the documented exit code, nothing written locally."""

from __future__ import annotations

import asyncio
import os

import nats
import pytest
from natsproc import NatsServer, free_port

from eventstore import ANY, EventStore, NewEvent


def _files(host) -> dict[str, int]:
    """Every file under the host's state dir with its size: what 'nothing written' means."""
    out = {}
    for dirpath, _, names in os.walk(host.state):
        for name in names:
            path = os.path.join(dirpath, name)
            out[path] = os.stat(path).st_size
    return out


@pytest.fixture
def host(hosts):
    h = hosts[0]
    (h.state / "events").mkdir(parents=True)
    with EventStore.open(h.state / "events") as store:
        store.append("sandbox-x", [NewEvent("Tick", {"i": 1})], ANY)
    return h


def _refused(host, args: list[str], code: int, words: str) -> str:
    before = _files(host)
    out = host(*args)
    assert out.returncode == code, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("sbx: error: "), out.stderr
    assert words in out.stderr
    assert _files(host) == before and not (host.state / "host-id").exists()
    return out.stderr


def _add_stream(url: str, name: str, subjects: list[str]) -> None:
    async def run() -> None:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            await nc.jetstream().add_stream(name=name, subjects=subjects)
        finally:
            await nc.close()
    asyncio.run(run())


def test_unreachable_or_malformed_url(host):
    dead = f"nats://127.0.0.1:{free_port()}"
    _refused(host, ["ship", "--nats", dead, "--until-caught-up"], 5, "cannot reach NATS")
    _refused(host, ["fleet", "list", "--nats", dead], 5, "cannot reach NATS")
    _refused(host, ["ship", "--nats", "http://example/x"], 2, "bad NATS URL")
    _refused(host, ["ship"], 2, "no NATS URL")
    _refused(host, ["ship", "--nats", dead, "--creds", "/nonexistent"], 2, "--creds")
    usage = host("fleet", "audit", "--nats", dead, "a.b", "x")   # argparse: usage + 1 line
    assert usage.returncode == 2 and "invalid host id 'a.b'" in usage.stderr.splitlines()[-1]


def test_a_server_without_jetstream(host, tmp_path):
    server = NatsServer(tmp_path, "nojs", jetstream=False).start()
    try:
        _refused(host, ["ship", "--nats", server.url], 5, "did not answer (is it enabled")
        _refused(host, ["fleet", "list", "--nats", server.url], 5, "reading stream")
    finally:
        server.stop()


def test_wrong_credentials_are_refused_and_never_printed(host, tmp_path):
    server = NatsServer(tmp_path, "auth", args=("--user", "ops", "--pass", "s3cret-pw")).start()
    try:
        port = server.port
        bad = f"nats://ops:wrong-pw@127.0.0.1:{port}"
        err = _refused(host, ["ship", "--nats", bad, "--until-caught-up"], 2,
                       "refused the credentials")
        assert "wrong-pw" not in err and "***@127.0.0.1" in err
        debug = host("--debug", "ship", "--nats", bad)        # tracebacks, still no secret
        assert debug.returncode == 2 and "wrong-pw" not in debug.stderr
        good = f"nats://ops:s3cret-pw@127.0.0.1:{port}"
        out = host.ok("ship", "--nats", good, "--until-caught-up")
        assert "s3cret-pw" not in out.stderr + out.stdout
        assert host.ok("fleet", "verify", "--nats", good).stdout.endswith(": ok\n")
    finally:
        server.stop()


def test_a_stream_with_other_subjects_or_an_overlap_is_a_conflict(host, nats_server):
    url = nats_server.url
    _add_stream(url, "SBX_EVENTS", ["other.>"])
    _refused(host, ["ship", "--nats", url], 3, "exists with subjects")
    _add_stream(url, "SBX_EVENTS_X", ["sbx.>"])
    _refused(host, ["ship", "--nats", url, "--stream", "FRESH"], 3, "cannot create stream")
    _refused(host, ["fleet", "list", "--nats", url, "--stream", "NOPE"], 4, "no stream 'NOPE'")


def test_a_host_id_already_shipped_by_another_log_is_refused(hosts, nats_server):
    url = nats_server.url
    for h in hosts[:2]:
        (h.state / "events").mkdir(parents=True)
        with EventStore.open(h.state / "events") as store:
            store.append("sandbox-x", [NewEvent("Tick", {"who": h.name})], ANY)
    hosts[0].ok("ship", "--nats", url, "--host-id", "same", "--until-caught-up")
    before = _files(hosts[1])
    out = hosts[1]("ship", "--nats", url, "--host-id", "same", "--until-caught-up")
    assert out.returncode == 3 and "another host uses this id" in out.stderr
    assert _files(hosts[1]) == before
