"""One container status for every view: `state`, `list` and `audit --at` agree once the
process's exit is recorded (issue #11: 17)."""

from __future__ import annotations

import json
import time


def test_an_exited_process_is_stopped_in_every_view(sbx, make_bundle) -> None:
    sbx.ok("create", "t1", "--bundle", str(make_bundle(["sh", "-c", "exit 3"])))
    sbx.ok("start", "t1")
    deadline = time.monotonic() + 30
    while json.loads(sbx.ok("state", "t1").stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "the exit was never recorded"
        sbx.ok("recover")                  # a writer probes running containers for exits
        time.sleep(0.2)
    [row] = json.loads(sbx.ok("list", "--json").stdout)
    assert row["containers"] == {"t1": "stopped"}
    assert "t1:stopped" in sbx.ok("list").stdout
    at = sbx.ok("audit", "t1", "--at", str(sbx.checkpoint()[0])).stdout
    assert "container t1: stopped (exit 3)" in at
    sbx.ok("delete", "t1")
