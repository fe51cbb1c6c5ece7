"""Lifecycle benchmark: N sandboxes, one container each, through the whole lifecycle.

Each sandbox runs the full lifecycle twice, once against a durable log (fsync at every
commit) and once against the same store opened with durable=False, alternating so that
machine noise hits both alike. Prints per-phase medians, the durable commits of one
lifecycle beside its side-effecting steps (they differ by one per operation plus one per
recorded fact), and the durable / non-durable wall time ratio (target <= 1.25). Runs on
disk, never tmpfs. Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from container_cycle import compare  # noqa: E402

from eventstore import EventStore, NewEvent  # noqa: E402
from sandbox_fsm import Runtime, RuntimeConfig, host  # noqa: E402
from sandbox_fsm.spec import ContainerConfig, SandboxConfig  # noqa: E402

TARGET_RATIO = 1.25
CID = "c1"
PHASES = ["create", "start", "create_container", "start_container", "wait",
          "stop_container", "delete_container", "stop", "delete"]
OPERATIONS = {"create": "create_sandbox", "start": "start_sandbox",
              "create_container": "create_container", "start_container": "start_container",
              "stop_container": "stop_container", "delete_container": "delete_container",
              "stop": "stop_sandbox", "delete": "delete_sandbox"}


class Counted:
    """A runtime whose store appends are counted (each append is one commit)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.commits = 0
        append = rt.store.append

        def counting(*args: object, **kwargs: object) -> object:
            result = append(*args, **kwargs)
            self.commits += 1
            return result

        rt.store.append = counting  # type: ignore[method-assign]


def lifecycle(counted: Counted, sid: str) -> tuple[dict[str, float], int, int]:
    """One sandbox through every phase: seconds per phase, commits, steps the log shows."""
    rt, start_commits = counted.rt, counted.commits
    calls: dict[str, Callable[[], object]] = {
        "create": lambda: rt.create_sandbox(SandboxConfig(id=sid)),
        "start": lambda: rt.start_sandbox(sid),
        "create_container": lambda: rt.create_container(
            sid, ContainerConfig(id=CID, args=("sh", "-c", "exit 3"))),
        "start_container": lambda: rt.start_container(sid, CID),
        "wait": lambda: rt.wait(sid, CID),
        "stop_container": lambda: rt.stop_container(sid, CID),
        "delete_container": lambda: rt.delete_container(sid, CID),
        "stop": lambda: rt.stop_sandbox(sid),
        "delete": lambda: rt.delete_sandbox(sid),
    }
    times = {}
    for phase in PHASES:
        t0 = time.perf_counter()
        calls[phase]()
        times[phase] = time.perf_counter() - t0
    state = rt.state(sid)
    if state.state != "deleted" or state.ledger:
        raise SystemExit(f"sandbox {sid!r} ended {state.state} holding {state.held()}")
    steps = sum(e.type == "StepStarted" for e in rt.events(sid))
    return times, counted.commits - start_commits, steps


def durable_append_ms(root: Path, count: int = 50) -> float:
    """The anchor: median ms of one durable single-event append on the same disk, now."""
    store = EventStore.open(root / "anchor", durable=True)
    try:
        times = []
        for i in range(count):
            t0 = time.perf_counter()
            store.append("anchor", [NewEvent("Tick", {"i": i})])
            times.append(time.perf_counter() - t0)
    finally:
        store.close()
    return statistics.median(times) * 1e3


def scrub(root: Path) -> None:
    """Leave nothing behind even when a lifecycle failed midway."""
    for ident in host.find_by_cmdline(str(root)):
        host.terminate(ident)
    for info in reversed(host.mounts_under(root)):
        host.unmount(info.mount_point)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="sandboxes per mode (default 20)")
    parser.add_argument("--quick", action="store_true", help="5 sandboxes per mode")
    parser.add_argument("--driver", choices=["namespaces", "process"],
                        default="namespaces" if os.geteuid() == 0 else "process")
    parser.add_argument("--dir", default="/var/tmp", help="parent of the temp dir (on disk)")
    parser.add_argument("--containers", type=int, default=10,
                        help="container cycles through the guest agent and through a bare "
                             "`runc run` (0: skip)")
    parser.add_argument("--run-dir", default=None,
                        help="parent of the runtime dirs (sockets, mounts, logs), e.g. a tmpfs "
                             "as /run is in production (default: beside the log, on disk)")
    args = parser.parse_args()
    n = 5 if args.quick else args.n

    base = RuntimeConfig.default()
    config = dataclasses.replace(
        base, hypervisor=dataclasses.replace(base.hypervisor, driver=args.driver))
    root = Path(tempfile.mkdtemp(prefix="lifecycle-bench-", dir=args.dir))
    run_root = Path(tempfile.mkdtemp(prefix="lifecycle-bench-run-", dir=args.run_dir or root))
    modes = {"durable": True, "nondurable": False}
    runtimes: dict[str, Counted] = {}
    phases: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PHASES} for m in modes}
    wall = dict.fromkeys(modes, 0.0)
    commits: dict[str, list[int]] = {m: [] for m in modes}
    steps: list[int] = []
    try:
        for mode, durable in modes.items():
            runtimes[mode] = Counted(Runtime.open(root / mode / "state", run_root / mode,
                                                  config, durable=durable))
        lifecycle(runtimes["durable"], "warmup")    # imports, first spawn
        for i in range(n):
            for mode in (modes if i % 2 == 0 else reversed(list(modes))):
                t0 = time.perf_counter()
                times, count, stepped = lifecycle(runtimes[mode], f"sb{i}")
                wall[mode] += time.perf_counter() - t0
                commits[mode].append(count)
                steps.append(stepped)
                for phase, seconds in times.items():
                    phases[mode][phase].append(seconds)
        anchor = durable_append_ms(root)
        cycle = compare(args.containers) if args.containers and os.geteuid() == 0 else {}
    finally:
        for counted in runtimes.values():
            counted.rt.close()
        for path in (run_root, root):
            scrub(path)
            shutil.rmtree(path, ignore_errors=True)

    if len({*commits["durable"], *commits["nondurable"]}) != 1 or len(set(steps)) != 1:
        raise SystemExit(f"lifecycles differ: commits {commits}, steps {steps}")
    per_lifecycle, step_count = commits["durable"][0], steps[0]
    ratio = wall["durable"] / wall["nondurable"]
    medians = {m: {p: statistics.median(v) * 1e3 for p, v in phases[m].items()} for m in modes}
    print(f"lifecycle bench: {n} sandboxes per mode, driver {args.driver}, log in {args.dir}, "
          f"runtime dirs in {args.run_dir or args.dir}")
    print(f"{'phase':<18}{'durable ms':>12}{'non-durable ms':>16}")
    for phase in PHASES:
        print(f"{phase:<18}{medians['durable'][phase]:>12.2f}"
              f"{medians['nondurable'][phase]:>16.2f}")
    print(f"durable commits per lifecycle: {per_lifecycle:g}, side-effecting steps: "
          f"{step_count:g} (difference {per_lifecycle - step_count:g}: one per operation "
          f"({len(OPERATIONS)}) + one recorded exit)")
    extra = (wall["durable"] - wall["nondurable"]) / n * 1e3
    print(f"durable append on this disk now: {anchor:.2f} ms; durable extra per lifecycle "
          f"{extra:.1f} ms ~ {extra / per_lifecycle:.2f} ms per commit")
    print(f"wall: durable {wall['durable']:.3f} s, non-durable {wall['nondurable']:.3f} s, "
          f"ratio {ratio:.3f} (target <= {TARGET_RATIO})")
    for key, value in cycle.items():
        print(f"container create+start+wait+delete, {key}: {value:.1f} ms "
              f"({value / cycle['runc_run_ms']:.2f}x a bare runc run)")
    print(json.dumps({
        "bench": "lifecycle", "sandboxes": n, "driver": args.driver,
        "container_cycle_ms": {k: round(v, 2) for k, v in cycle.items()},
        "log_dir": args.dir, "run_dir": args.run_dir or args.dir,
        "phase_median_ms": {m: {p: round(v, 3) for p, v in medians[m].items()} for m in modes},
        "commits_per_lifecycle": per_lifecycle, "side_effect_steps": step_count,
        "operations_per_lifecycle": len(OPERATIONS),
        "durable_append_ms": round(anchor, 3),
        "wall_s": {m: round(v, 4) for m, v in wall.items()},
        "durable_ratio": round(ratio, 4), "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
