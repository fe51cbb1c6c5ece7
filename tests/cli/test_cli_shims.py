"""The runc command-line contract and per-process shims, driven the way containerd's shim
drives a runtime (tests/cli/subreaper.py stands in for it), without a daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox_fsm.host import SandboxLayout
from sandbox_fsm.host.layout import SUN_PATH_MAX

SBX = str(Path(sys.executable).parent / "sbx")
SUBREAPER = str(Path(__file__).with_name("subreaper.py"))
pytestmark = pytest.mark.root


class Client:
    """`sbx create` under a subreaper that waits for the shim, as containerd's shim does."""

    def __init__(self, sbx: Any, tmp: Path, cid: str) -> None:
        self.sbx, self.cid = sbx, cid
        self.pid_file, self.stdin, self.stdout = (tmp / f"{cid}.pid", tmp / f"{cid}.in",
                                                  tmp / f"{cid}.out")
        self.stdin.write_text("")

    def create(self, bundle: Path, *globals_: str, stdin: str = "") -> subprocess.Popen:
        self.stdin.write_text(stdin)
        proc = subprocess.Popen(
            [sys.executable, SUBREAPER, str(self.pid_file), str(self.stdin), str(self.stdout),
             "--", SBX, *globals_, "create", "--bundle", str(bundle), "--pid-file",
             str(self.pid_file), self.cid], env=self.sbx.env, stdout=subprocess.PIPE,
            text=True)
        self.sbx.procs.append(proc)
        assert proc.stdout is not None
        self.first = json.loads(proc.stdout.readline())
        return proc

    def status(self, proc: subprocess.Popen) -> int:
        out, _ = proc.communicate(timeout=60)
        return json.loads(out)["status"]


def test_shim_relays_stdio_and_exits_with_the_status(sbx: Any, make_bundle, tmp_path):
    client = Client(sbx, tmp_path, "relay")
    proc = client.create(make_bundle(["sh", "-c", "read line; echo got $line; exit 3"]),
                         stdin="hello\n")
    assert client.first["create"] == 0
    shim = client.first["pid"]
    assert "sandbox_fsm.shim" in Path(f"/proc/{shim}/cmdline").read_text()
    state = json.loads(sbx.ok("state", "relay").stdout)
    assert (state["status"], state["pid"]) == ("created", shim)
    assert set(state) >= {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                          "owner", "annotations"}
    sbx.ok("start", "relay")
    assert client.status(proc) == 3
    assert client.stdout.read_text() == "got hello\n"
    assert json.loads(sbx.ok("state", "relay").stdout)["status"] == "stopped"
    sbx.ok("delete", "relay")
    exits = [e["data"] for e in sbx.export() if e["type"] == "ProcessExited"]
    assert exits == [{"container": "relay", "exec_id": "", "status": 3}]


def test_kill_exec_ps_and_signal_status(sbx: Any, make_bundle, tmp_path):
    client = Client(sbx, tmp_path, "sig")
    proc = client.create(make_bundle(["sleep", "1000"]))
    sbx.ok("start", "sig")
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["sh", "-c", "echo from-exec; exit 4"],
                                   "cwd": "/", "env": ["PATH=/usr/bin:/bin"]}))
    out = sbx("exec", "--process", str(process), "sig")
    assert (out.returncode, out.stdout) == (4, "from-exec\n"), out.stderr
    pids = json.loads(sbx.ok("ps", "--format", "json", "sig").stdout)
    assert pids == [client.first["pid"]]
    sbx.ok("kill", "sig", "KILL")
    assert client.status(proc) == 137
    out = sbx("delete", "sig")
    assert out.returncode == 0, out.stderr
    assert sbx("delete", "--force", "sig").returncode == 0     # runc: nothing to force


def test_a_shim_killed_from_outside_ends_its_process_with_255(sbx: Any, make_bundle,
                                                              tmp_path):
    client = Client(sbx, tmp_path, "lost")
    proc = client.create(make_bundle(["sleep", "987654"]))
    sbx.ok("start", "lost")
    shim = client.first["pid"]
    os.kill(shim, signal.SIGKILL)
    assert client.status(proc) == 137
    assert "lost_shims" in sbx.ok("recover", "--json").stdout
    exits = [e["data"] for e in sbx.export() if e["type"] == "ProcessExited"]
    assert [(e["exec_id"], e["status"]) for e in exits] == [("", 255)]
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) ==
                "sleep\x00987654\x00"]
    assert json.loads(sbx.ok("state", "lost").stdout)["status"] == "stopped"
    sbx.ok("delete", "lost")
    assert "shim:lost" not in json.dumps([e for e in sbx.export()][-1])


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def test_long_id_under_a_long_root_and_roots_apart(sbx: Any, make_bundle, tmp_path):
    root = tmp_path / ("r" * 90)
    cid = "c" * 128
    client = Client(sbx, tmp_path, cid)
    proc = client.create(make_bundle(["true"]), "--root", str(root))
    assert client.first["create"] == 0, client.stdout.read_text()
    lay = SandboxLayout(root / ".sbx" / "run", cid)
    assert len(os.fsencode(lay.agent_socket)) <= SUN_PATH_MAX and lay.sock_dir.is_dir()
    listed = json.loads(sbx.ok("--root", str(root), "list", "--json").stdout)
    assert [r["id"] for r in listed] == [cid]
    other = sbx.ok("--root", str(tmp_path / "other"), "list", "--json").stdout
    assert json.loads(other) == []
    sbx.ok("--root", str(root), "start", cid)
    assert client.status(proc) == 0
    sbx.ok("--root", str(root), "delete", cid)
    assert not lay.sock_dir.exists()


def test_errors_go_to_the_log_as_runc_writes_them(sbx: Any, tmp_path):
    log = tmp_path / "log.json"
    flags = ["--root", str(tmp_path / "root"), "--log", str(log), "--log-format", "json"]
    out = sbx(*flags, "create", "--bundle", str(tmp_path / "missing"), "x")
    assert out.returncode == 2
    out = sbx(*flags, "--systemd-cgroup", "kill", "nosuch", "9")
    assert out.returncode == 4
    out = sbx(*flags, "frobnicate")
    assert out.returncode == 2
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["level"] for line in lines] == ["error"] * 3
    assert "missing" in lines[0]["msg"] and "nosuch" in lines[1]["msg"]
    assert "frobnicate" in lines[2]["msg"]
    assert all(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S") for line in lines)
    features = json.loads(sbx.ok("features").stdout)
    assert features["ociVersionMax"] == "1.0.2"


def test_a_crash_after_spawning_a_shim_is_rolled_back(sbx: Any, make_bundle, tmp_path):
    client = Client(sbx, tmp_path, "crash")
    sbx.env["SBX_CRASH_AT"] = "start_shim:after"
    try:
        proc = client.create(make_bundle(["sleep", "1000"]))
    finally:
        del sbx.env["SBX_CRASH_AT"]
    proc.communicate(timeout=30)
    assert client.first == {"create": -signal.SIGKILL}
    log = SandboxLayout(sbx.root / "run", "crash").log_dir / "shim-crash.log"
    shims = [p for p in os.listdir("/proc") if p.isdigit() and str(log) in _cmdline(p)]
    assert shims, "the crash came after the spawn: the shim runs, unrecorded"
    report = json.loads(sbx.ok("recover", "--json").stdout)
    assert any("start_shim" in line for s in report["sandboxes"] for line in s["found"])
    for pid in shims:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(
            f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    state = json.loads(sbx.ok("state", "crash").stdout)
    assert state["status"] == "created"
    sbx.ok("delete", "--force", "crash")


def test_the_shim_forwards_the_signals_it_gets(sbx: Any, make_bundle, tmp_path):
    client = Client(sbx, tmp_path, "fwd")
    loop = "trap 'echo got term; exit 42' TERM; echo ready; while true; do sleep 0.05; done"
    proc = client.create(make_bundle(["sh", "-c", loop]))
    sbx.ok("start", "fwd")
    deadline = time.monotonic() + 30
    while client.stdout.read_text() != "ready\n" and time.monotonic() < deadline:
        time.sleep(0.05)      # until the shell has set its trap
    os.kill(client.first["pid"], signal.SIGTERM)
    assert client.status(proc) == 42
    assert client.stdout.read_text() == "ready\ngot term\n"
    sbx.ok("delete", "fwd")
