"""Stand in for containerd's shim: become a child subreaper, run `sbx create|exec ...`
with the given stdio, then wait for the pid it wrote to --pid-file and print that
process's exit status (the shim's, as the client sees it).

    python subreaper.py PID_FILE STDIN STDOUT -- SBX ARGS...
Prints one JSON line: {"create": rc, "pid": pid, "status": status}.
"""

import ctypes
import json
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    pid_file, stdin, stdout = sys.argv[1:4]
    cmd = sys.argv[5:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with open(stdin, "rb") as i, open(stdout, "ab") as o:
        rc = subprocess.call(cmd, stdin=i, stdout=o, stderr=o)
    if rc != 0:
        print(json.dumps({"create": rc}), flush=True)
        return 0
    with open(pid_file) as f:
        pid = int(f.read())
    print(json.dumps({"create": 0, "pid": pid}), flush=True)
    while True:          # reap every orphan (the guest too); report the shim's status
        try:
            got, status = os.wait()
        except ChildProcessError:
            return 1
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            print(json.dumps({"status": 128 - code if code < 0 else code}), flush=True)
            return 0


if __name__ == "__main__":
    sys.exit(main())
