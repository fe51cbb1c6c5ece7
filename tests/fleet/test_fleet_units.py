"""Pure parts of the fleet package: configuration, subjects, URLs, host ids, the wire."""

from __future__ import annotations

import os
import stat

import pytest

from eventstore import ANY, EventStore, NewEvent
from sandbox_fsm.config import ConfigError, parse_config
from sandbox_fsm.errors import InvalidRequest
from sandbox_fsm.fleet import (
    NatsOptions,
    redact,
    resolve_host_id,
    save_host_id,
    stored_host_id,
    verify_host,
    wire,
)


def test_fleet_section_of_the_configuration():
    cfg = parse_config({"fleet": {"nats_url": "nats://a:1", "stream": "FLEET_1",
                                  "replicas": 3, "host_id": "web-1"}}).fleet
    assert (cfg.nats_url, cfg.stream, cfg.replicas, cfg.host_id) == \
        ("nats://a:1", "FLEET_1", 3, "web-1")
    assert parse_config({}).fleet.stream == "SBX_EVENTS"
    for key, value, words in (("replicas", 0, "too small"), ("host_id", "a.b", "not valid"),
                              ("stream", "A B", "not valid"), ("nats_url", 5, "wrong type"),
                              ("nodes", 3, "unknown key")):
        with pytest.raises(ConfigError, match=f"\\[fleet\\] {key}: .*{words}"):
            parse_config({"fleet": {key: value}})


def test_subjects_escape_what_a_token_cannot_hold():
    assert wire.subject_of("h1", "sandbox-web.1") == "sbx.events.h1.web%2E1"
    assert wire.subject_of("h1", "sandbox-a%b") == "sbx.events.h1.a%25b"
    assert wire.subject_of("h1", "other stream") == "sbx.events.h1.~other%20stream"
    assert wire.host_filter("h1") == "sbx.events.h1.>" and wire.host_filter(None) == "sbx.events.>"


def test_urls_are_checked_and_never_shown_with_secrets():
    opts = NatsOptions.parse("nats://u:pw@10.0.0.1:4222, tls://10.0.0.2:4222")
    assert opts.urls == ("nats://u:pw@10.0.0.1:4222", "tls://10.0.0.2:4222")
    assert opts.where() == "nats://***@10.0.0.1:4222,tls://10.0.0.2:4222"
    assert redact("nats://tok@h:1") == "nats://***@h:1" and redact("nats://h:1") == "nats://h:1"
    for bad in ("", "http://h:1", "nats://", "nats://h:port"):
        with pytest.raises(InvalidRequest):
            NatsOptions.parse(bad)


def test_host_id_is_kept_once_0600_and_checked(tmp_path):
    assert stored_host_id(tmp_path) is None
    fresh = resolve_host_id(tmp_path)
    assert stored_host_id(tmp_path) is None           # resolving writes nothing
    save_host_id(tmp_path, fresh)
    save_host_id(tmp_path, "another")                 # the first one stays
    assert stored_host_id(tmp_path) == fresh == resolve_host_id(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "host-id").st_mode) == 0o600
    assert resolve_host_id(tmp_path, "cfg-id") == "cfg-id"
    with pytest.raises(InvalidRequest):
        resolve_host_id(tmp_path, "../x")
    (tmp_path / "host-id").write_text("bad id\n")
    with pytest.raises(InvalidRequest, match="host id in"):
        stored_host_id(tmp_path)


def test_a_message_carries_the_exact_bytes_the_hash_covers(tmp_path):
    with EventStore.open(tmp_path / "ev") as store:
        store.append("sandbox-a", [NewEvent("T", {"f": 0.1, "b": b"\x00", "l": [1, (2, 3)],
                                                  "n": None, "big": 2**63})], ANY)
        store.append("sandbox-a", [NewEvent("U", {"s": "é"}, {"m": 1})], ANY)
        events = list(store.read_all())
    prev = "00" * 32
    for e in events:
        body = wire.canonical_body(e)
        assert wire.chains(prev, e.position, body, e.hash)
        h = wire.headers_of("h1", e, prev)
        back = wire.shipped_from(9, wire.subject_of("h1", e.stream), h, body)
        assert back.event() == e and back.msg_id == f"h1:{e.position}"
        prev = e.hash
    with pytest.raises(wire.BadMessage):
        wire.shipped_from(1, "sbx.events.h1.a", {"Sbx-Position": "x"}, b"")
    with pytest.raises(wire.BadMessage):
        wire.shipped_from(1, "sbx.events.h1.a", {**h, "Sbx-Host": "h2"}, b"")


def _shipped(tmp_path, n: int) -> list[wire.Shipped]:
    with EventStore.open(tmp_path / "v") as store:
        for i in range(n):
            store.append("sandbox-a", [NewEvent("T", {"i": i})], ANY)
        events = list(store.read_all())
    out, prev = [], "00" * 32
    for seq, e in enumerate(events, 1):
        out.append(wire.shipped_from(seq, wire.subject_of("h", e.stream),
                                     wire.headers_of("h", e, prev), wire.canonical_body(e)))
        prev = e.hash
    return out


def test_verify_names_reorderings_bad_hashes_and_broken_links(tmp_path):
    msgs = _shipped(tmp_path, 6)
    assert verify_host("h", msgs).ok
    report = verify_host("h", [msgs[0], msgs[2], msgs[1], *msgs[3:]])
    assert [f.line() for f in report.findings] == [
        "host h position 1 (stream seq 2): reordered: stored after position 2"]
    forged = msgs[3]._replace(body=msgs[3].body.replace(b"\x03", b"\x07"))
    report = verify_host("h", [*msgs[:3], forged, *msgs[4:]])
    assert [f.problem for f in report.findings] == ["hash does not match the message's data"]
    relinked = msgs[4]._replace(prev_hash=msgs[2].hash)
    report = verify_host("h", [*msgs[:4], relinked, msgs[5]])
    assert "previous hash does not chain to the message at position 3" in \
        report.findings[0].problem
    assert verify_host("h", msgs[:4], anchor=(5, msgs[5].hash)).findings[0].problem.startswith(
        "the host's checkpoint is at this position")
    assert verify_host("h", msgs, anchor=(5, msgs[5].hash)).ok
