"""Run as a script between fork and the container's program: session tty, root, identity,
death signal, then exec. The agent never runs Python in a forked child of its threaded,
gRPC-holding process (that crashed); it execs this small stdlib-only script instead.

argv: childexec.py SPEC_JSON STATUS_FD. On failure the reason goes to STATUS_FD (close-on-
exec), so the agent learns about a bad program/cwd/identity exactly like Popen would.
"""

import ctypes
import fcntl
import json
import os
import signal
import sys
import termios

PR_SET_PDEATHSIG = 1
SIGKILL = 9


def execvpe(args: list, env: dict) -> None:
    """execvpe without os.execvpe, which imports modules that a chroot may not have."""
    if "/" in args[0]:
        os.execve(args[0], args, env)
    first_error: OSError | None = None
    for directory in env.get("PATH", "").split(":"):
        try:
            os.execve(os.path.join(directory or ".", args[0]), args, env)
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            first_error = exc if isinstance(exc, PermissionError) else first_error or exc
    if isinstance(first_error, PermissionError):
        raise first_error
    raise FileNotFoundError(f"{args[0]!r} not found on PATH {env.get('PATH')!r}") from first_error


def main() -> None:
    spec = json.loads(sys.argv[1])
    status_fd = int(sys.argv[2])
    os.set_inheritable(status_fd, False)
    try:
        if spec["terminal"]:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if spec["root"]:
            os.chroot(spec["root"])
        os.chdir(spec["cwd"])
        if os.geteuid() == 0:
            os.setgroups(spec["groups"])
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0:  # after setuid, which clears it
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != spec["parent"]:
            raise RuntimeError("the agent exited before the death signal was armed")
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; a program
            signal.signal(signum, signal.SIG_DFL)        # starts with the defaults (as Popen)
        execvpe(spec["args"], spec["env"])
    except BaseException as exc:
        os.write(status_fd, f"{type(exc).__name__}: {exc}".encode())
        os._exit(127)


main()
