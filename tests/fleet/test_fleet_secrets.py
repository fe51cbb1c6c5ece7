"""Credentials pass through to nats-py: an nkey user and a TLS server, both real."""

from __future__ import annotations

import os
import subprocess

import nkeys
from natsproc import NatsServer

from eventstore import ANY, EventStore, NewEvent


def _log(host) -> None:
    (host.state / "events").mkdir(parents=True)
    with EventStore.open(host.state / "events") as store:
        store.append("sandbox-x", [NewEvent("Tick", {"i": 1})], ANY)


def _seed_file(path) -> str:
    """A fresh user nkey: writes its seed (0600) to `path`, returns the public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, seed + b"\n")
    os.close(fd)
    return nkeys.from_seed(bytearray(seed)).public_key.decode()


def test_an_nkey_user_ships_and_another_is_refused(hosts, tmp_path):
    host = hosts[0]
    _log(host)
    allowed = _seed_file(tmp_path / "ok.nk")
    _seed_file(tmp_path / "stranger.nk")
    conf = tmp_path / "nkey.conf"
    conf.write_text(f'authorization {{ users = [ {{ nkey: "{allowed}" }} ] }}\n')
    server = NatsServer(tmp_path, "nk", args=("-c", str(conf))).start()
    try:
        bad = host("ship", "--nats", server.url, "--nkey", str(tmp_path / "stranger.nk"),
                   "--until-caught-up")
        assert bad.returncode == 2 and "refused the credentials" in bad.stderr
        assert bad.stderr.count("\n") == 1 and not (host.state / "host-id").exists()
        host.ok("ship", "--nats", server.url, "--nkey", str(tmp_path / "ok.nk"),
                "--until-caught-up")
        out = host.ok("fleet", "verify", "--nats", server.url, "--nkey",
                      str(tmp_path / "ok.nk")).stdout
        assert out.endswith(": ok\n") and host.host_id() in out
        seed = (tmp_path / "ok.nk").read_text().strip()
        assert seed not in bad.stderr + out
    finally:
        server.stop()


def test_tls_with_our_ca_and_refused_without_it(hosts, tmp_path):
    host = hosts[0]
    _log(host)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = NatsServer(tmp_path, "tls", args=("--tls", "--tlscert", str(cert), "--tlskey",
                                               str(key))).start()
    url = f"tls://127.0.0.1:{server.port}"
    try:
        bad = host("ship", "--nats", url, "--until-caught-up")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
        assert not (host.state / "host-id").exists()
        host.ok("ship", "--nats", url, "--tls-ca", str(cert), "--until-caught-up")
        rows = host.json("fleet", "list", "--nats", url, "--tls-ca", str(cert))
        assert [(r["host"], r["id"]) for r in rows] == [(host.host_id(), "x")]
    finally:
        server.stop()
