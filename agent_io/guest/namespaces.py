"""--namespaces: the outer process unshares mount/PID/UTS/IPC and forks the inner agent.

The outer pid (the one the host started) stays the handle: SIGKILL of it fires the inner
init's PDEATHSIG, and when a PID namespace's init dies the kernel kills everything in it;
SIGTERM/SIGINT are forwarded for a clean shutdown (escalated to SIGKILL if ignored).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

from agent_io.guest import syscalls

FLAGS = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWPID | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
INNER_FLAG = "--namespaced"
_TERM_GRACE_S = 15


def _inner(argv: list[str], alive: int) -> None:
    """Runs as pid 1 of the new PID namespace, then execs the agent proper.

    getppid() is 0 here (the parent is outside the namespace), so whether the outer
    process died before PDEATHSIG was armed is read from a pipe it holds open: EOF = dead.
    """
    try:
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.set_blocking(alive, False)
        try:
            if os.read(alive, 1) == b"":
                os._exit(1)
        except BlockingIOError:
            pass
        os.close(alive)
        # Our mounts must not leak out, yet host mounts made later must still come in.
        syscalls.mount("none", "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
        syscalls.mount("proc", "/proc", "proc",
                       syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC)
        os.execv(sys.executable, [sys.executable, "-m", "agent_io.guest", *argv, INNER_FLAG])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)


def run_outer(argv: list[str]) -> int:
    """Unshare, fork the inner agent, forward termination, and return its exit code."""
    if os.geteuid() != 0:
        raise SystemExit("agent_io.guest: --namespaces needs root")
    syscalls.unshare(FLAGS)
    alive, keep = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(keep)
        _inner(argv, alive)
    os.close(alive)
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            return
        if signal.getitimer(signal.ITIMER_REAL)[0] == 0:
            signal.alarm(_TERM_GRACE_S)  # no threads here: CLONE_NEWPID forbids them

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGALRM, lambda *_: _kill(child))
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
