"""The read verbs import only what they use: no agent client, gRPC, protobuf, lifecycle
machines, operations or Runtime (issue #16: `sbx list`/`sbx state` start fast)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("grpc", "google.protobuf", "agent_io.client", "agent_io.messages", "protos",
         "asyncio", "transitions", "sandbox_fsm.runtime",
         "sandbox_fsm.operations", "sandbox_fsm.spec", "sandbox_fsm.config")
PROBE = """
import io, json, sys
from contextlib import redirect_stdout
from sandbox_fsm.cli import main
heavy = tuple(json.loads(sys.argv.pop(1)))
out = io.StringIO()
with redirect_stdout(out):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(),
                  "heavy": sorted(m for m in sys.modules if m.startswith(heavy))}))
"""


def _probe(sbx, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), *args],
                          capture_output=True, text=True, env=sbx.env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_list_and_state_load_no_agent_client_or_runtime(sbx, make_bundle):
    sbx.ok("create", "light", "--bundle", str(make_bundle(["true"])))
    try:
        listed = _probe(sbx, "list", "--json")
        assert listed["code"] == 0 and listed["heavy"] == []
        assert [row["id"] for row in json.loads(listed["out"])] == ["light"]
        state = _probe(sbx, "state", "light")
        assert state["code"] == 0 and state["heavy"] == []
        assert json.loads(state["out"])["status"] == "created"
        assert _probe(sbx, "log")["heavy"] == []
    finally:
        sbx.ok("delete", "--force", "light")
