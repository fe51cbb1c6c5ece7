"""Find processes a crashed runtime started but never recorded (intent without outcome).

Each sandbox process carries a path unique to its sandbox (its socket) on its command
line, so recovery can find it by that marker even though its pid was never written down.
"""

from __future__ import annotations

import os

from .procs import ProcessIdentity, identity_of


def find_by_cmdline(marker: str) -> list[ProcessIdentity]:
    """Live processes (other than this one) whose command line contains `marker`."""
    needle = os.fsencode(marker)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline:
            ident = identity_of(int(name))
            if ident is not None:
                found.append(ident)
    return found
