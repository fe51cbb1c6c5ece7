"""Kill the runtime at the qemu driver's steps (a real VM under TCG here), recover, and
finish the lifecycle: no qemu, proxy or mount the log does not hold is ever left.

start_vm:after is the in-doubt launch (qemu runs, its pid is not in the log): recovery
finds it by the lock qemu holds on its pidfile. Each case boots one or two VMs, so the
points are the ones where the qemu driver differs from the process driver.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_crash_lifecycle import POINTS, crash_recover_continue

pytestmark = pytest.mark.root

QEMU_POINTS = ("start_vm:after#1", "start_proxy:before#1", "start_proxy:after#1",
               "stop_proxy:after#1", "stop_vm:before#1", "stop_vm:after#1")


@pytest.mark.parametrize(("k", "knob"), [p for p in POINTS if p[1] in QEMU_POINTS],
                         ids=[p[1] for p in POINTS if p[1] in QEMU_POINTS])
def test_crash_at_a_qemu_step(dirs: tuple[Path, Path], k: int, knob: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    crash_recover_continue(dirs, "qemu", k, knob, monkeypatch, timeout=400)
