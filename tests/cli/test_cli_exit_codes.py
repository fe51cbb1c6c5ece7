"""Exit codes as docs/cli.md says, one line each, nothing written on bad input
(issue #11: 9, 14)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostcheck import busybox_tree

SBX = str(Path(sys.executable).parent / "sbx")


@pytest.fixture(scope="module")
def host(module_sbx, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("bundle")
    busybox_tree(bundle / "rootfs")
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["sleep", "300"], "cwd": "/", "env": ["PATH=/usr/bin:/bin"]}}))
    module_sbx.ok("create", "host", "--bundle", str(bundle))
    module_sbx.ok("start", "host")
    yield module_sbx
    module_sbx.ok("delete", "--force", "host")


def _one_line(out: subprocess.CompletedProcess, code: int, piece: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sbx: error: ") and piece in lines[0], lines
    assert "unexpected" not in lines[0]


BAD = [
    (["exec", "host", "--user", "abc", "--", "true"], 2, "user 'abc'"),
    (["exec", "host", "--user", "1:2:3", "--", "true"], 2, "user '1:2:3'"),
    (["events", "host", "--interval", "nan"], 2, "'nan'"),
    (["events", "host", "--interval", "inf"], 2, "'inf'"),
    (["events", "host", "--interval", "0"], 2, "'0'"),
    (["diagram", "container", "--sandbox", "host", "--container", "nosuch"], 4, "'nosuch'"),
    (["diagram", "--sandbox", "host", "--container", "host"], 2, "--container"),
    (["log", "--sandbox", "nosuch"], 4, "'nosuch'"),
    (["export", "--sandbox", "nosuch"], 4, "'nosuch'"),
    (["audit"], 2, "arguments are required: id"),
    (["run", "--bogus", "--", "true"], 2, "unrecognized arguments: --bogus"),
    (["frobnicate"], 2, "invalid choice"),
    ([], 2, "required: COMMAND"),
]


@pytest.mark.parametrize(("argv", "code", "piece"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_exit_codes_and_nothing_written(host, argv: list[str], code: int, piece: str) -> None:
    before = host.checkpoint()
    _one_line(host(*argv), code, piece)
    assert host.checkpoint() == before


@pytest.mark.root
def test_read_only_state_dir_is_a_failure_not_a_bug(sbx) -> None:
    sbx.ok("run", "--", "true")
    state = sbx.root / "state"
    subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
        _one_line(sbx("run", "--", "true"), 1, "Read-only file system")
    finally:
        subprocess.run(["umount", str(state)], check=True)


@pytest.mark.root
def test_full_disk_is_a_failure_not_a_bug(sbx, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(small)], check=True)
    env = {"SBX_STATE_DIR": str(small)}
    try:
        sbx.ok("run", "--", "true", env=env)
        with open(small / "fill", "wb", buffering=0) as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 4096)
        out = sbx("run", "--id", "full", "--", "true", env=env)
        assert out.returncode == 1 and "unexpected" not in out.stderr, out.stderr
        assert "cannot write to the event store" in out.stderr
        (small / "fill").unlink()
        sbx.ok("run", "--", "true", env=env)   # room again: what the full disk left is removed
        states = {r["id"]: r["state"] for r in json.loads(sbx.ok("list", "--json",
                                                                 env=env).stdout)}
        assert states.get("full", "deleted") in ("new", "deleted"), states
    finally:
        sbx("delete", "--force", "full", env=env)
        subprocess.run(["umount", str(small)], check=True)


def test_delete_while_another_sbx_creates_is_a_conflict(sbx, make_bundle) -> None:
    faults = json.dumps([{"rpc": "CreateContainer", "nth": 1, "action": "delay",
                          "seconds": 4}])
    bundle = make_bundle(["sleep", "30"])
    creating = subprocess.Popen([SBX, "create", "race", "--bundle", str(bundle)],
                                env={**sbx.env, "SBX_AGENT_FAULTS": faults},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sbx.procs.append(creating)
    deadline = time.monotonic() + 30
    while "create_container" not in sbx("audit", "race").stdout:
        assert time.monotonic() < deadline and creating.poll() is None
        time.sleep(0.1)
    out = sbx("delete", "--force", "race")
    assert out.returncode == 3, out.stderr
    assert creating.wait(30) == 0, creating.stderr.read() if creating.stderr else ""
    sbx.ok("delete", "--force", "race")



def test_reading_stats_appends_nothing(host) -> None:
    """`sbx events` only reads: a fast interval cannot grow the log (#11: 9)."""
    before = host.checkpoint()
    events = host.popen("events", "host", "--interval", "0.05")
    assert events.stdout is not None
    lines = [json.loads(events.stdout.readline()) for _ in range(5)]
    events.send_signal(signal.SIGINT)
    assert events.wait(10) in (0, 130)
    assert all(line["type"] == "stats" for line in lines)
    assert host.checkpoint() == before
