"""Kill the runtime at every step of a whole lifecycle, before and after the side effect;
the next `Runtime.open` recovers, the host matches the log, and the lifecycle goes on.

Each case runs `crash_child.py` with `SBX_CRASH_AT` set; it dies by SIGKILL.
"""

from __future__ import annotations

from pathlib import Path

import crash_child as lifecycle
import pytest
from crash_checks import check_recovered, crash_child
from hostcheck import leftovers, make_config

from sandbox_fsm import Runtime, steps

LIFECYCLE, SANDBOX, CONTAINER = lifecycle.LIFECYCLE, lifecycle.SANDBOX, lifecycle.CONTAINER


# operation -> (sandbox before, sandbox after, container before, container after)
STATES = {
    "create_sandbox": ("new", "created", None, None),
    "start_sandbox": ("created", "running", None, None),
    "create_container": ("running", "running", "new", "created"),
    "start_container": ("running", "running", "created", "running"),
    "stop_container": ("running", "running", "running", "stopped"),
    "delete_container": ("running", "running", "stopped", "deleted"),
    "stop_sandbox": ("running", "stopped", "deleted", "deleted"),
    "delete_sandbox": ("stopped", "deleted", "deleted", "deleted"),
}
FORWARD = {"stop_container", "delete_container", "stop_sandbox", "delete_sandbox"}


def crash_points() -> list[tuple[int, str]]:
    """(lifecycle index, knob) for every step of every lifecycle operation, both sides:
    every step `steps()` lists, the optional ones included."""
    table, seen, out = steps(), {}, []
    for k, op in enumerate(LIFECYCLE):
        for step in (s for s in table[op] if not s.endswith(".undo")):
            seen[step] = seen.get(step, 0) + 1
            out += [(k, f"{step}:{when}#{seen[step]}") for when in ("before", "after")]
    return out


POINTS = crash_points()
NAMESPACE_POINTS = ("start_vm:after#1", "start_proxy:before#1", "mount_volume:after#1",
                    "create_container_in_guest:before#1", "stop_vm:before#1",
                    "unmount_shared_dir:after#1")


def crash_recover_continue(dirs: tuple[Path, Path], driver: str, k: int, knob: str,
                           monkeypatch: pytest.MonkeyPatch, timeout: float = 120) -> None:
    """Every step that can run is reached: a network and dynamic tracing are on."""
    monkeypatch.setenv(lifecycle.ALL_STEPS_ENV, "1")
    state_dir, run = dirs
    volume = state_dir.parent / "volume"
    volume.mkdir()
    crash_child(state_dir, run, volume, driver, knob, timeout=timeout)
    op = LIFECYCLE[k]
    forward = op in FORWARD
    sandbox, container = STATES[op][1::2] if forward else STATES[op][0::2]
    with Runtime.open(state_dir, run, make_config(driver, tracing=True)) as rt:
        if sandbox == "new" and not forward:
            assert leftovers(run) == ([], []), f"{knob}: create rolled back, yet {leftovers(run)}"
        state = check_recovered(rt, run, SANDBOX)
        assert state.state == sandbox, f"{knob}: sandbox is {state.state}, want {sandbox}"
        got = state.containers.get(CONTAINER)
        assert (got.state if got else "new") == (container or "new"), \
            f"{knob}: container is {got and got.state}, want {container}"
        lifecycle.run(rt, str(volume), LIFECYCLE[k + 1:] if forward else LIFECYCLE[k:])
        final = rt.state(SANDBOX)
        assert final.state == "deleted" and not final.ledger, (final.state, final.held())
        assert rt.store.verify().ok
    assert leftovers(run) == ([], []), f"{knob}: left {leftovers(run)} after delete"


@pytest.mark.parametrize(("k", "knob"), POINTS, ids=[knob for _, knob in POINTS])
def test_crash_at_every_step(dirs: tuple[Path, Path], k: int, knob: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    crash_recover_continue(dirs, "process", k, knob, monkeypatch)


@pytest.mark.root
@pytest.mark.parametrize(("k", "knob"), [p for p in POINTS if p[1] in NAMESPACE_POINTS],
                         ids=[p[1] for p in POINTS if p[1] in NAMESPACE_POINTS])
def test_crash_with_namespaces(dirs: tuple[Path, Path], k: int, knob: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    crash_recover_continue(dirs, "namespaces", k, knob, monkeypatch)


def test_every_step_that_can_run_is_a_crash_point() -> None:
    """steps() lists the optional steps, so the crash tests above reach them (#11: 19)."""
    named = {knob.split(":")[0] for _, knob in POINTS}
    assert {"setup_network", "start_tracing", "stop_tracing", "check_nothing_held"} <= named
    table = steps()
    assert {"setup_network", "start_tracing"} <= set(table["start_sandbox"])
    assert "stop_tracing" in table["stop_sandbox"]
