"""Post-mortem through the CLI: audit timeline and --at, verify, export, diagram, log."""

from __future__ import annotations

import base64
import json
import os
import signal
from pathlib import Path

import lmdb

FAULT = json.dumps([{"rpc": "CreateContainer", "nth": 1, "action": "error",
                     "code": "INTERNAL"}])


def test_audit_shows_a_failure_and_its_compensations(sbx):
    out = sbx("run", "--id", "bad", "--", "true", env={"SBX_AGENT_FAULTS": FAULT})
    assert out.returncode == 1
    assert "create_container_in_guest" in out.stderr and "rolled back" in out.stderr
    table = sbx.ok("audit", "bad").stdout.splitlines()
    failed = [line for line in table if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith("!")
    assert "create_container_in_guest" in failed[0] and "INTERNAL" in failed[0]
    compensated = [line for line in table if "COMPENSATED" in line]
    assert [line.split()[5] for line in compensated] == [
        "create_container_in_guest", "mount_rootfs"]
    assert all(line.startswith("<-") for line in compensated)
    assert "\033[" not in "\n".join(table)          # no colour when not a tty

    rows = json.loads(sbx.ok("audit", "--json", "bad").stdout)
    assert rows[-1]["event"] == "OperationCompleted" and "deleted" in rows[-1]["detail"]
    started = next(r for r in rows if r["event"] == "OperationStarted")
    assert started["operation"] == "create_sandbox"
    steps = [r for r in rows if r["event"] in ("SharedDirMounted", "StepFailed")]
    assert all(r["duration"] is not None and r["duration"] >= 0 for r in steps)


def test_audit_at_a_position_and_a_time(sbx):
    sbx.ok("run", "--id", "a", "--", "true")
    rows = json.loads(sbx.ok("audit", "--json", "a").stdout)
    running = next(r for r in rows if r["event"] == "OperationCompleted"
                   and r["detail"] == "state running")
    at = json.loads(sbx.ok("audit", "a", "--json", "--at", str(running["position"])).stdout)
    assert at["state"] == "running" and "process:guest" in at["ledger"]
    text = sbx.ok("audit", "a", "--at", str(running["position"])).stdout
    assert "running at position" in text and "process:guest" in text
    end = json.loads(sbx.ok("audit", "a", "--json", "--at", rows[-1]["time"]).stdout)
    assert end["state"] == "deleted" and end["ledger"] == {}
    bad = sbx("audit", "a", "--at", "yesterday")
    assert bad.returncode == 2 and "ISO-8601" in bad.stderr


def test_verify_with_and_without_anchor_and_a_tampered_store(sbx, tmp_path):
    sbx.ok("run", "--id", "v", "--", "echo", "tamper-me")
    assert sbx.ok("verify").stdout.startswith("ok:")
    anchor = tmp_path / "anchor.json"
    anchor.write_text(sbx.ok("checkpoint").stdout)
    assert set(json.loads(anchor.read_text())) == {"position", "hash"}
    assert "anchor" in sbx.ok("verify", "--anchor", str(anchor)).stdout

    _rewrite_first(tmp_path / "state" / "events", b"tamper-me", b"TAMPER-ME")
    out = sbx("verify")
    assert out.returncode == 1 and "FAILED" in out.stderr and "Traceback" not in out.stderr
    out = sbx("verify", "--anchor", str(anchor))
    assert out.returncode == 1 and "FAILED" in out.stderr


def _rewrite_first(path: Path, old: bytes, new: bytes) -> None:
    """Change a stored record in place, as an attacker with file access could."""
    env = lmdb.open(str(path), max_dbs=8, map_size=16 * 1024**3)
    try:
        db = env.open_db(b"events", create=False)
        with env.begin(write=True, db=db) as txn:
            for key, value in txn.cursor():
                if old in value:
                    txn.put(key, value.replace(old, new, 1))
                    return
        raise AssertionError(f"{old!r} not found in {path}")
    finally:
        env.close()


def test_export_has_every_field_of_every_event(sbx):
    sbx.ok("run", "--id", "x", "--", "true")
    lines = sbx.export()
    assert [e["position"] for e in lines] == list(range(len(lines)))
    assert set(lines[0]) == {"position", "stream", "version", "type", "data", "metadata",
                             "event_id", "recorded_at", "schema", "hash"}
    only = sbx.ok("export", "--sandbox", "x").stdout.splitlines()
    assert len(only) == len(lines)


def test_export_encodes_bytes_as_base64():
    from eventstore import RecordedEvent
    from sandbox_fsm.audit import export_record
    event = RecordedEvent(0, "s", 0, "T", {"blob": b"\x00\xff"}, {}, "id", 1, 1, "h")
    assert export_record(event)["data"]["blob"] == {
        "$base64": base64.b64encode(b"\x00\xff").decode()}


def test_diagram_marks_the_path_taken(sbx):
    plain = sbx.ok("diagram").stdout
    assert plain.startswith("stateDiagram-v2") and "running --> paused: pause" in plain
    assert "taken" not in plain
    sbx.ok("run", "--id", "d", "--", "true")
    marked = sbx.ok("diagram", "--sandbox", "d").stdout
    assert "%% path taken: new -> created -> running -> stopped -> deleted" in marked
    assert "created --> running: start (taken)" in marked
    assert "class deleted current" in marked and "class paused" not in marked
    container = sbx.ok("diagram", "container", "--sandbox", "d").stdout
    assert "new -> created -> running -> stopped -> deleted" in container


def test_log_follow_sees_another_process_writing(sbx):
    follower = sbx.popen("log", "--follow", "--json", "--type", "OperationCompleted")
    sbx.ok("run", "--id", "f", "--", "true")
    seen = []
    while not seen or seen[-1] != "deleted":
        line = follower.stdout.readline()
        assert line, follower.stderr.read()
        seen.append(json.loads(line)["data"]["state"])
    follower.send_signal(signal.SIGINT)
    assert follower.wait(10) == 0
    assert seen[-1] == "deleted" and "running" in seen
    log = sbx.ok("log", "--sandbox", "f").stdout.splitlines()
    assert len(log) == len(sbx.export()) and "sandbox-f" in log[0]
    assert os.path.isdir(sbx.root / "state" / "events")
