"""OCI-runtime verbs against a bundle the test writes: create, start, state, kill, delete."""

from __future__ import annotations

import json
import signal
import time


def _state(sbx, sid: str) -> dict:
    return json.loads(sbx.ok("state", sid).stdout)


def test_bundle_lifecycle(sbx, make_bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    bundle = make_bundle(["sleep", "30"], mounts=[
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]}],
        linux={"namespaces": [{"type": "pid"}]})
    sbx.ok("create", "web", "--bundle", str(bundle))
    created = _state(sbx, "web")
    assert created["ociVersion"] and created["id"] == "web"
    assert created["status"] == "created" and created["pid"] > 0
    assert created["bundle"] == str(bundle)
    assert created["annotations"] == {"org.example/owner": "ops"}

    sbx.ok("start", "web")
    assert _state(sbx, "web")["status"] == "running"
    ps = json.loads(sbx.ok("ps", "--json", "web").stdout)
    assert len(ps) >= 1
    assert "PID" in sbx.ok("ps", "web").stdout.splitlines()[0]
    sbx.ok("pause", "web")
    assert _state(sbx, "web")["status"] == "paused"
    sbx.ok("resume", "web")
    assert _state(sbx, "web")["status"] == "running"

    events = sbx.popen("events", "web", "--interval", "0.1")
    stats = json.loads(events.stdout.readline())
    assert (stats["type"], stats["id"]) == ("stats", "web") and stats["data"]
    events.send_signal(signal.SIGINT)
    assert events.wait(10) in (0, 130)

    events = [e for e in sbx.export() if e["type"] == "OperationStarted"
              and e["data"]["operation"] == "create_container"]
    config = events[0]["data"]["params"]["config"]
    assert config["mounts"] == [{"source": str(data), "destination": "/data",
                                 "readonly": True, "type": "bind", "options": []}]
    assert config["oci"] is None      # the spec is recorded once: in CreateContainer's intent
    [intent] = [e["data"]["args"] for e in sbx.export() if e["type"] == "StepStarted"
                and e["data"]["step"] == "create_container_in_guest"]
    assert intent["spec"]["linux"] == {"namespaces": []}   # the pid entry: sandbox_pidns
    assert intent["sandbox_pidns"] is False

    sbx.ok("kill", "web", "KILL")
    for _ in range(100):   # delete (without --force) waits for the process to have exited
        out = sbx("delete", "web")
        if out.returncode == 0:
            break
        assert out.returncode == 2 and "still running" in out.stderr
        time.sleep(0.05)
    assert out.returncode == 0, out.stderr
    gone = sbx("state", "web")
    assert gone.returncode == 4 and "deleted" in gone.stderr
    statuses = [e["data"]["status"] for e in sbx.export() if e["type"] == "ProcessExited"]
    assert statuses == [137]


def test_kill_by_name_and_delete_needs_force_while_running(sbx, make_bundle):
    sbx.ok("create", "k", "--bundle", str(make_bundle(["sleep", "30"])))
    sbx.ok("start", "k")
    out = sbx("delete", "k")
    assert out.returncode == 2 and "--force" in out.stderr
    sbx.ok("kill", "k", "sigstop")
    kills = [e["data"]["params"] for e in sbx.export() if e["type"] == "OperationStarted"
             and e["data"]["operation"] == "kill"]
    assert kills == [{"signal": 19, "all": False, "exec_id": None}]
    sbx.ok("delete", "--force", "k")
    assert sbx("state", "k").returncode == 4


def test_list_shows_every_sandbox(sbx, make_bundle):
    sbx.ok("create", "one", "--bundle", str(make_bundle(["true"])))
    table = sbx.ok("list").stdout.splitlines()
    assert table[0].split() == ["ID", "STATE", "CONTAINERS", "CREATED"]
    assert table[1].split()[:3] == ["one", "running", "one:created"]
    sbx.ok("delete", "--force", "one")


def test_recover_reports_and_is_idempotent(sbx):
    out = sbx.ok("recover", "--json")
    assert json.loads(out.stdout)["ok"] is True
    assert "scanned 0 sandboxes" in sbx.ok("recover", "--dry-run").stdout
