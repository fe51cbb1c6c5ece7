"""Finding an unrecorded process: a whole argv element, started after the intent; never a
substring of another process's command line (issue #11: 12)."""

from __future__ import annotations

import subprocess
import sys
import time

from sandbox_fsm.host import find_by_argv

SLEEPER = "import time; time.sleep(60)"


def test_exact_argv_element_and_start_time() -> None:
    mine, other = "unix:/tmp/a/r/s/agent.sock", "unix:/tmp/a/x/tmp/a/r/s/agent.sock"
    older = subprocess.Popen([sys.executable, "-c", SLEEPER, "--listen", mine])
    try:
        time.sleep(2.2)              # btime has 1 s resolution: be clearly later
        intent = time.time()
        procs = [subprocess.Popen([sys.executable, "-c", SLEEPER, "--listen", arg])
                 for arg in (other, mine, mine + ".x")]
        try:
            found = {p.pid for p in find_by_argv(mine, started_after=intent)}
            assert found == {procs[1].pid}
            assert {p.pid for p in find_by_argv(mine)} == {older.pid, procs[1].pid}
            assert {p.pid for p in find_by_argv("/tmp/a/r/s/agent.sock", mine[5:])} == set()
        finally:
            for p in procs:
                p.kill()
                p.wait()
    finally:
        older.kill()
        older.wait()
