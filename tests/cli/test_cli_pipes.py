"""`sbx run ... | head`: when our reader goes away the process gets SIGPIPE and `sbx`
exits as a shell pipeline's writer would, the sandbox removed (issue #11: 8)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest


@pytest.mark.parametrize(("argv", "status"), [
    (["yes"], 128 + signal.SIGPIPE),
    # ignores SIGPIPE and nothing reads its output any more: killed after a grace period
    (["sh", "-c", "trap '' PIPE; while :; do echo y; done"], 128 + signal.SIGKILL),
], ids=["yes", "ignores-sigpipe"])
def test_run_into_a_closed_pipe_ends(sbx, argv: list[str], status: int) -> None:
    proc = sbx.popen("run", "--id", "piped", "--", *argv)
    assert proc.stdout is not None
    assert [proc.stdout.readline() for _ in range(2)] == ["y\n", "y\n"]
    proc.stdout.close()                                  # what `head -2` does after 2 lines
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError("sbx run kept draining a closed pipe") from None
    assert code == status, proc.stderr.read() if proc.stderr else ""
    [row] = json.loads(sbx.ok("list", "--json").stdout)
    assert row["state"] == "deleted"
    exits = [e["data"]["status"] for e in sbx.export() if e["type"] == "ProcessExited"]
    assert exits == [status]
