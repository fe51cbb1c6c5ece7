"""Per-process shims: the host process an OCI client sees for each container process.

Like kata's `prepareAndStartShim`, `create` and `exec` start one shim per process. The
client's subreaper (containerd's shim) adopts it, reads its pid from `--pid-file`, hands
it the process's stdio and reaps it: the shim relays that stdio to and from the guest
agent, forwards the signals it receives, and exits with the process's status (128+N for
a signal). Shims are ledger resources (operations/shim.py); a shim lost from outside is
found by its recorded identity (recovery.py here).

Modules: `console` (the terminal sent over `--console-socket`), `startgate` (an init
shim waits for `start`), `relay` (the shim's own loop), `__main__` (its entry point),
`recovery` (lost shims). How a shim is started and released as a ledger resource is
operations/shim.py.
"""


def shim_key(exec_id: str) -> str:
    """A shim's key in the resource ledger (exec id == container id for the init process)."""
    return f"shim:{exec_id}"
