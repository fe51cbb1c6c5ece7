"""Blocking rpcs never starve Health.Check and short calls (issue #11: 13)."""

from __future__ import annotations

import signal
import threading

from guestkit import oci_spec

from agent_io.errors import AgentRpcError
from agent_io.guest.admission import BLOCKING

SESSIONS = 140        # about what 43 `sbx exec` sessions hold (wait + stdout + stderr each)


def test_many_blocking_waits_leave_room_for_check_and_short_calls(agent) -> None:
    agent.client.create_container("w", oci_spec(["sleep", "600"]))
    agent.client.start_container("w")
    clients = [agent.new_client() for _ in range(7)]
    results: list[int | str] = []

    def wait(i: int) -> None:
        try:
            results.append(clients[i % len(clients)].wait_process("w", "w"))
        except AgentRpcError as exc:
            results.append(exc.code)

    waiters = [threading.Thread(target=wait, args=(i,)) for i in range(SESSIONS)]
    for t in waiters:
        t.start()
    quick = agent.new_client(timeouts={"default": 3.0, "Check": 3.0})
    try:
        for _ in range(5):
            assert quick.check() == 1                                   # SERVING, in time
            assert quick.stats_container("w") is not None
            assert b"sleep" in quick.list_processes("w", "table")
        assert not results                                              # all still waiting
    finally:
        agent.client.signal_process("w", signal.SIGKILL, "w")
        for t in waiters:
            t.join(60)
        for c in (*clients, quick):
            c.close()
    assert results == [128 + signal.SIGKILL] * SESSIONS
    assert SESSIONS < BLOCKING
