"""`sbx run` and `sbx exec` end to end: output, exit status, stdin, signals, cleanup."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest


def _wait_running(sbx, sid: str) -> None:
    for _ in range(200):
        out = sbx("state", sid)
        if out.returncode == 0 and json.loads(out.stdout)["status"] == "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"{sid} never ran: {out.stderr}")


def test_run_echo_prints_and_deletes(sbx):
    out = sbx.ok("run", "--", "echo", "hello")
    assert out.stdout == "hello\n"
    [row] = json.loads(sbx.ok("list", "--json").stdout)
    assert re.fullmatch(r"run-[0-9a-f]{8}", row["id"])
    assert row["state"] == "deleted"


def test_run_exits_with_the_command_status_and_streams_stderr(sbx):
    out = sbx("run", "--id", "seven", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (out.returncode, out.stdout, out.stderr) == (7, "out\n", "err\n")
    assert sbx("state", "seven").returncode == 4          # deleted


def test_run_volumes_appear_at_their_destination(sbx, tmp_path):
    src = tmp_path / "shared-data"
    src.mkdir()
    (src / "f").write_text("from the host\n")
    out = sbx.ok("run", "-v", f"{src}:/data", "-v", f"{src}:/ro:ro", "--", "sh", "-c",
                 "cat /data/f; echo new > /data/g; echo x > /ro/h || echo refused")
    assert out.stdout == "from the host\nrefused\n"
    assert (src / "g").read_text() == "new\n" and not (src / "h").exists()


def test_run_forwards_stdin_with_i(sbx):
    out = sbx.ok("run", "-i", "--", "cat", input="line one\nline two\n")
    assert out.stdout == "line one\nline two\n"


def test_run_env_workdir_user_hostname(sbx, tmp_path):
    out = sbx.ok("run", "-e", "GREETING=hi there", "-w", "/tmp", "-u", "1000:1000",
                 "--", "sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g')
    assert out.stdout.split("\n")[:4] == ["hi there", "/tmp", "1000", "1000"]


def test_run_keep_leaves_the_sandbox_running(sbx):
    sbx.ok("run", "--id", "kept", "--keep", "--", "true")
    assert json.loads(sbx.ok("state", "kept").stdout)["status"] == "stopped"   # its process
    [row] = json.loads(sbx.ok("list", "--json").stdout)
    assert (row["state"], row["containers"]) == ("running", {"kept": "stopped"})  # as state
    sbx.ok("delete", "--force", "kept")
    assert sbx("state", "kept").returncode == 4


def test_sigint_is_forwarded_and_the_sandbox_deleted(sbx):
    proc = sbx.popen("run", "--id", "sig", "--", "sleep", "30")
    _wait_running(sbx, "sig")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert "Traceback" not in proc.stderr.read()
    assert sbx("state", "sig").returncode == 4
    exits = [e["data"]["status"] for e in sbx.export() if e["type"] == "ProcessExited"]
    assert exits == [130]


def test_exec_streams_and_exits_with_its_status(sbx, make_bundle):
    sbx.ok("create", "host", "--bundle", str(make_bundle(["sleep", "30"])))
    sbx.ok("start", "host")
    out = sbx("exec", "host", "--", "sh", "-c", "echo from-exec; exit 4")
    assert (out.returncode, out.stdout) == (4, "from-exec\n")
    sbx.ok("delete", "--force", "host")


@pytest.mark.root
def test_process_driver_from_a_config_file(sbx, tmp_path):
    config = tmp_path / "sbx.toml"
    config.write_text('[hypervisor]\ndriver = "process"\n')
    out = sbx.ok("--config", str(config), "run", "--", "echo", "via process driver")
    assert out.stdout == "via process driver\n"


def test_a_signal_during_setup_still_removes_the_sandbox(sbx):
    proc = sbx.popen("run", "--id", "early", "--", "sleep", "30")
    while sbx("list", "--json").stdout.strip() in ("", "[]"):   # the sandbox is being made
        assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    [row] = json.loads(sbx.ok("list", "--json").stdout)
    assert row["state"] == "deleted"


def test_a_killed_run_is_recovered_and_its_sandbox_removed_by_the_next_sbx(sbx):
    out = sbx("run", "--id", "orphan", "--", "echo", "hi",
              env={"SBX_CRASH_AT": "start_container_in_guest:after"})
    assert out.returncode == -9
    assert json.loads(sbx.ok("state", "orphan").stdout)["status"] in ("created", "running")
    nxt = sbx.ok("run", "--", "echo", "again")
    assert nxt.stdout == "again\n"
    assert "removing sandbox 'orphan', left by a killed `sbx run`" in nxt.stderr
    assert sbx("state", "orphan").returncode == 4
    kept = sbx("run", "--id", "kept", "--keep", "--", "true",
               env={"SBX_CRASH_AT": "start_container_in_guest:after"})
    assert kept.returncode == -9
    sbx.ok("run", "--", "true")
    assert sbx("state", "kept").returncode == 0     # --keep: never removed behind its back
    sbx.ok("delete", "--force", "kept")


def test_run_t_gives_the_process_a_terminal_of_our_size(sbx):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    sbx_bin = str(Path(sys.executable).parent / "sbx")
    proc = subprocess.Popen([sbx_bin, "run", "-t", "--", "sh", "-c", "tty; stty size"],
                            stdin=slave, stdout=slave, stderr=slave, env=sbx.env)
    os.close(slave)
    out = b""
    with contextlib.suppress(OSError):      # EIO once every writer has closed the pty
        while chunk := os.read(master, 4096):
            out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, out
    lines = out.decode().split()
    assert lines[0].startswith("/dev/pts/") and lines[1:] == ["30", "100"], out
