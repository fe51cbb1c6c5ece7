"""What a killed agent leaves behind is removed by its janitor.

Containers made by runc outlive the process that made them. When the agent runs in its
own PID namespace the kernel ends them with it; otherwise nothing would. So the agent
starts this small process first (outside any namespace it makes), holding the read end
of a pipe whose only writer is the agent. End of file means the agent is gone, cleanly
or not: the janitor kills whatever is still in the guest's cgroups, removes them and
runc's state, and exits. After a clean shutdown there is nothing left and it exits at
once. Its command line names no path (it works relative to its working directory, the
guest dir), and it never runs runc: a dead agent's state cannot be trusted.

python -m agent_io.guest.janitor TOKEN PRIVATE_DIR   (stdin: the pipe)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from agent_io.guest import cgroups


def start(token: str, guest_dir: Path, private: str) -> int:
    """Start the janitor; returns the write end of its pipe (keep it open, close-on-exec)."""
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen([sys.executable, "-m", "agent_io.guest.janitor", token, private],
                         stdin=read_end, stdout=subprocess.DEVNULL, cwd=guest_dir,
                         start_new_session=True, close_fds=True)
    finally:
        os.close(read_end)
    return write_end


def main(argv: list[str]) -> int:
    token, private = argv
    while os.read(0, 4096):  # nothing is ever written: wait for the writer to go
        pass
    left = cgroups.remove_tree(cgroups.parent_dirs(token))
    shutil.rmtree(private, ignore_errors=True)
    if left:
        print(f"agent_io.guest.janitor: could not remove {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
