"""Process identity, signalling and termination with real processes."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from sandbox_fsm.host.procs import (
    ProcessDied,
    ProcessIdentity,
    identity_of,
    is_alive,
    reap_children,
    signal_process,
    spawn,
    terminate,
    wait_for_path,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
IGNORES_TERM = [
    sys.executable, "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "open(sys.argv[1], 'w').close()\n"
    "time.sleep(600)\n",
]


def test_identity_parses_comm_with_spaces_and_parens(tmp_path: Path, janitor) -> None:
    odd = tmp_path / "a b) (c"
    odd.symlink_to(sys.executable)
    ident = spawn([str(odd), "-c", "import time; time.sleep(600)"])
    janitor.track(ident.pid)
    with open(f"/proc/{ident.pid}/stat", "rb") as f:
        assert b"a b) (c" in f.read()
    assert identity_of(ident.pid) == ident
    assert is_alive(ident)
    assert terminate(ident) is True
    assert not is_alive(ident)
    assert identity_of(ident.pid) is None  # reaped: no zombie left


def test_recycled_pid_is_never_signalled(janitor) -> None:
    ident = spawn(SLEEPER)
    janitor.track(ident.pid)
    impostor = ProcessIdentity(ident.pid, ident.start_time + 1)
    assert not is_alive(impostor)
    assert signal_process(impostor, signal.SIGKILL) is False
    assert terminate(impostor) is False
    assert is_alive(ident)  # the real process never got a signal
    assert signal_process(ident, 0) is True


def test_zombie_counts_as_dead(janitor) -> None:
    ident = spawn([sys.executable, "-c", "pass"])
    janitor.track(ident.pid)
    os.waitid(os.P_PID, ident.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    assert identity_of(ident.pid) == ident
    assert not is_alive(ident)
    assert signal_process(ident, signal.SIGTERM) is False
    assert terminate(ident) is False
    assert identity_of(ident.pid) is None
    assert ident not in reap_children()


def test_terminate_escalates_to_sigkill(tmp_path: Path, janitor) -> None:
    ready = tmp_path / "ready"
    ident = spawn(IGNORES_TERM + [str(ready)])
    janitor.track(ident.pid)
    wait_for_path(ready, timeout=30, ident=ident)
    assert terminate(ident, timeout=0.2) is True
    assert not is_alive(ident)
    assert identity_of(ident.pid) is None


def test_spawn_logs_and_reap_children_collects_exits(tmp_path: Path, janitor) -> None:
    log = tmp_path / "child.log"
    ident = spawn([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                  log_path=log, cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")})
    janitor.track(ident.pid)
    os.waitid(os.P_PID, ident.pid, os.WEXITED | os.WNOWAIT)
    assert ident in reap_children()
    assert identity_of(ident.pid) is None
    assert sorted(log.read_text().split()) == ["err", "out"]


def test_wait_for_path_fails_fast_with_log_tail(tmp_path: Path, janitor) -> None:
    log = tmp_path / "agent.log"
    ident = spawn([sys.executable, "-c", "raise SystemExit('cannot bind the agent socket')"],
                  log_path=log)
    janitor.track(ident.pid)
    with pytest.raises(ProcessDied, match="cannot bind the agent socket") as info:
        wait_for_path(tmp_path / "agent.sock", timeout=60, ident=ident)
    assert str(ident.pid) in str(info.value) and "agent.sock" in str(info.value)
    reap_children()


def test_wait_for_path_times_out_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match="never.sock"):
        wait_for_path(tmp_path / "never.sock", timeout=0.05)


def test_wait_for_path_returns_once_it_exists(tmp_path: Path, janitor) -> None:
    target = tmp_path / "late"
    ident = spawn([sys.executable, "-c",
                   "import sys, time; time.sleep(0.1); open(sys.argv[1], 'w').close(); "
                   "time.sleep(600)", str(target)])
    janitor.track(ident.pid)
    wait_for_path(target, timeout=60, ident=ident)
    assert target.exists()
    assert terminate(ident)


def test_stale_socket_is_not_ready(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(stale))  # bound, never listening, then closed: what a SIGKILL leaves
    with pytest.raises(TimeoutError, match="stale.sock"):
        wait_for_path(stale, timeout=0.05)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        stale.unlink()
        s.bind(str(stale))
        s.listen(1)
        wait_for_path(stale, timeout=5)
