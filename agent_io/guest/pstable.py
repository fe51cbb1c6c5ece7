"""ListProcesses: a ps-like table (ps with the host's args, filtered to the container's pids)."""

from __future__ import annotations

import json
import subprocess


def ps_table(pids: list[int], fmt: str, args: list[str], where: str) -> bytes:
    """'json' answers the pid list; 'table' runs ps ARGS and keeps the header and our rows."""
    if fmt == "json":
        return json.dumps(sorted(pids)).encode()
    if fmt != "table":
        raise ValueError(f"{where}: unknown format {fmt!r} (want 'table' or 'json')")
    ps_args = list(args) or ["-ef"]
    try:
        # The agent's reaper may collect ps first, so only stdout is trusted, not the status.
        out = subprocess.run(
            ["ps", *ps_args], capture_output=True, timeout=30, check=False
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"{where}: ps {ps_args!r} failed: {exc}") from exc
    lines = out.splitlines()
    if not lines:
        raise ValueError(f"{where}: ps {ps_args!r} printed nothing (bad args?)")
    header = lines[0].split()
    if "PID" not in header:
        raise ValueError(f"{where}: ps {ps_args!r} output has no PID column")
    col = header.index("PID")
    wanted = {str(p) for p in pids}
    rows = [line for line in lines[1:] if len(line.split()) > col and line.split()[col] in wanted]
    return ("\n".join([lines[0], *rows]) + "\n").encode()
