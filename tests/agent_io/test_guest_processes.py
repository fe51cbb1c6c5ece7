"""Container processes through the real agent: stdio, signals, wait, pause, exec, tty, ps."""

from __future__ import annotations

import json
import signal
import threading

import pytest
from guestkit import oci_spec, proc_state, read_all, wait_until
from hostcheck import command_pids, freezer_state

from agent_io import messages as m
from agent_io.errors import AgentRpcError


def _run(agent, cid: str, args: list[str], **kw) -> None:
    agent.client.create_container(cid, oci_spec(args, **kw))
    agent.client.start_container(cid)


def _pids(agent, cid: str, count: int = 1) -> list[int]:
    """The container's processes but its init (tini, pid 1 inside, runs the command)."""
    return command_pids(lambda: json.loads(agent.client.list_processes(cid, "json")), count)


def test_echo_stdout_stderr_and_exit_status(agent):
    _run(agent, "c1", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert read_all(agent.client, "c1", "c1") == b"out\n"
    assert read_all(agent.client, "c1", "c1", "stderr") == b"err\n"
    assert agent.client.wait_process("c1", "c1") == 3
    assert agent.client.wait_process("c1", "") == 3  # after exit, again, via the empty id
    agent.client.remove_container("c1")
    with pytest.raises(AgentRpcError) as err:
        agent.client.wait_process("c1", "c1")
    assert err.value.code == "NOT_FOUND"


def test_cat_through_stdin(agent):
    _run(agent, "cat", ["cat"])
    assert agent.client.write_stdin("cat", "cat", b"hello ") == 6
    assert agent.client.write_stdin("cat", "cat", b"world") == 5
    agent.client.close_stdin("cat", "cat")
    assert read_all(agent.client, "cat", "cat") == b"hello world"
    assert agent.client.wait_process("cat", "cat") == 0


def test_sleep_signal_wait_from_several_callers(agent):
    _run(agent, "s", ["sleep", "600"])
    results: list[int] = []
    waiters = [threading.Thread(target=lambda: results.append(
        agent.new_client().wait_process("s", "s"))) for _ in range(3)]
    for t in waiters:
        t.start()
    agent.client.signal_process("s", signal.SIGTERM, "s")
    for t in waiters:
        t.join(30)
    assert results == [128 + signal.SIGTERM] * 3


def test_pause_resume_freezes_the_cgroup(agent):
    _run(agent, "p", ["sleep", "600"])
    (pid,) = _pids(agent, "p")
    agent.client.pause_container("p")
    assert freezer_state(pid) == "FROZEN"
    with pytest.raises(AgentRpcError) as err:
        agent.client.pause_container("p")
    assert err.value.code == "FAILED_PRECONDITION"
    agent.client.resume_container("p")
    assert freezer_state(pid) == "THAWED"
    wait_until(lambda: proc_state(pid) == "S", "resumed process sleeping")
    agent.client.remove_container("p")
    wait_until(lambda: proc_state(pid) == "gone", "removed container's process reaped")


def test_exec_in_running_container_and_signal_all(agent):
    _run(agent, "e", ["sleep", "600"])
    agent.client.exec_process("e", "x1", m.oci.Process(Args=["sh", "-c", "echo $((6*7))"],
                                                        Cwd="/tmp", Env=["A=1"]))
    assert read_all(agent.client, "e", "x1") == b"42\n"
    assert agent.client.wait_process("e", "x1") == 0
    agent.client.exec_process("e", "x2", m.oci.Process(Args=["sleep", "600"], Cwd="/"))
    with pytest.raises(AgentRpcError) as err:
        agent.client.exec_process("e", "x2", m.oci.Process(Args=["true"], Cwd="/"))
    assert err.value.code == "ALREADY_EXISTS"
    assert len(_pids(agent, "e", 2)) == 2  # the container's command and the exec
    agent.client.signal_process("e", signal.SIGKILL, all=True)
    assert agent.client.wait_process("e", "x2") == 128 + signal.SIGKILL
    assert agent.client.wait_process("e", "e") == 128 + signal.SIGKILL


def test_terminal_process_and_resize(agent):
    _run(agent, "t", ["sh", "-c", "read line; stty size; echo got:$line"], terminal=True)
    agent.client.tty_win_resize("t", "t", 33, 99)
    agent.client.write_stdin("t", "t", b"abc\n")
    out = read_all(agent.client, "t", "t")
    assert b"33 99" in out and b"got:abc" in out
    assert agent.client.read_stderr("t", "t") == b""
    assert agent.client.wait_process("t", "t") == 0


def test_stats_and_ps_table(agent):
    busy = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 600"
    _run(agent, "st", ["sh", "-c", busy])
    (pid,) = _pids(agent, "st")
    agent.client.update_container("st", m.oci.LinuxResources(Pids=m.oci.LinuxPids(Limit=50)))
    stats = agent.client.stats_container("st").cgroup_stats
    assert stats.pids_stats.current >= 1 and stats.pids_stats.limit == 50

    def figures():
        return agent.client.stats_container("st").cgroup_stats

    wait_until(lambda: figures().memory_stats.usage.usage > 0, "resident memory accounted")
    wait_until(lambda: figures().cpu_stats.cpu_usage.total_usage > 0, "cpu time accounted")
    table = agent.client.list_processes("st", "table", ["-o", "pid,stat,args"]).decode()
    lines = table.splitlines()
    assert lines[0].split()[0] == "PID"
    assert any(line.split()[0] == str(pid) for line in lines[1:])
    assert len(lines) == 3  # only this container's init and command, not the host's


def test_remove_with_timeout_and_bad_requests(agent):
    _run(agent, "r", ["sleep", "600"])
    with pytest.raises(AgentRpcError) as err:
        agent.client.create_container("r", oci_spec(["true"]))
    assert err.value.code == "ALREADY_EXISTS"
    with pytest.raises(AgentRpcError) as err:
        agent.client.start_container("r")
    assert err.value.code == "FAILED_PRECONDITION"
    agent.client.remove_container("r", timeout=10)
    for bad in ("../x", "a/b", ".hidden", "x" * 129):
        with pytest.raises(AgentRpcError) as err:
            agent.client.create_container(bad, oci_spec(["true"]))
        assert err.value.code == "INVALID_ARGUMENT" and repr(bad)[:20] in err.value.details
    with pytest.raises(AgentRpcError) as err:
        agent.client.start_container("nope")
    assert err.value.code == "NOT_FOUND" and "'nope'" in err.value.details
    with pytest.raises(AgentRpcError) as err:  # refused before runc makes anything
        agent.client.create_container("bad", oci_spec(["/no/such/program"]))
    assert err.value.code == "INVALID_ARGUMENT" and "/no/such/program" in err.value.details
