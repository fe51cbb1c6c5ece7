"""Recovery at open vs a naive full replay, on a store of many sandboxes.

One real lifecycle (process driver: a real guest, 3 containers with a volume each) is
recorded once; its events are the template for N finished sandboxes (~100 events each)
and, cut right after the intent of delete_sandbox's first step, for 100 sandboxes whose
delete is in flight (owner: a process that has exited). Their host paths do not exist, so
rolling them forward touches nothing real but runs the real steps and appends the real
events. Measured in one run:

- naive: `project(store.read_stream(s))` for every stream (what a runtime that keeps no
  snapshots and no shortcuts would do at start-up);
- recovery: `Runtime.open(recover=False)` + `recover()`.

Usage: python bench/recovery_bench.py [--quick] [--sandboxes N] [--in-flight M]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventstore import EventStore, NewEvent  # noqa: E402
from sandbox_fsm import ContainerConfig, Mount, Runtime, RuntimeConfig, SandboxConfig  # noqa: E402
from sandbox_fsm.host import identity_of  # noqa: E402
from sandbox_fsm.projection import project  # noqa: E402
from sandbox_fsm.repository import STREAM_PREFIX  # noqa: E402

# Every sandbox id has this length, so bytes.replace keeps msgpack valid.
TEMPLATE_ID = "s999999999"


def sandbox_id(i: int) -> str:
    return f"s{i:09d}"


def record_template(work: Path) -> list[tuple[str, dict, dict]]:
    """One real lifecycle's events as (type, data, metadata)."""
    base = RuntimeConfig.default()
    config = dataclasses.replace(base, hypervisor=dataclasses.replace(base.hypervisor,
                                                                      driver="process"))
    volume = work / "volume"
    volume.mkdir()
    with Runtime.open(work / "tmpl-state", work / "run", config, durable=False) as rt:
        rt.create_sandbox(SandboxConfig(id=TEMPLATE_ID))
        rt.start_sandbox(TEMPLATE_ID)
        for n in range(3):
            cid = f"c{n}"
            rt.create_container(TEMPLATE_ID, ContainerConfig(
                id=cid, args=("sh", "-c", "exit 0"), mounts=(Mount(str(volume), "/data"),)))
            rt.start_container(TEMPLATE_ID, cid)
            rt.wait(TEMPLATE_ID, cid)
            rt.stop_container(TEMPLATE_ID, cid)
            rt.delete_container(TEMPLATE_ID, cid)
        rt.stop_sandbox(TEMPLATE_ID)
        rt.delete_sandbox(TEMPLATE_ID)
        return [(e.type, e.data, e.metadata) for e in rt.events(TEMPLATE_ID)]


def dead_owner() -> dict:
    """The identity of a process that has exited: its operations are orphans."""
    proc = subprocess.Popen(["true"])
    ident = identity_of(proc.pid)
    proc.wait()
    return {"pid": ident.pid, "start_time": ident.start_time}


def in_flight_cut(template: list[tuple[str, dict, dict]]) -> int:
    """Events up to the intent of delete_sandbox's first step (its outcome not recorded)."""
    for i, (type_, data, _) in enumerate(template):
        if type_ == "OperationStarted" and data["operation"] == "delete_sandbox":
            return i + 2
    raise ValueError("the template has no delete_sandbox")


def populate(store: EventStore, template: list[tuple[str, dict, dict]], finished: int,
             in_flight: int) -> int:
    owner = dead_owner()
    events = [(t, {**d, "owner": owner} if t == "OperationStarted" else d, m)
              for t, d, m in template]
    packed = msgpack.packb(events)
    cut = in_flight_cut(template)
    old = TEMPLATE_ID.encode()
    total = 0
    for i in range(finished + in_flight):
        sid = sandbox_id(i)
        mine = msgpack.unpackb(packed.replace(old, sid.encode()))
        if i >= finished:
            mine = mine[:cut]
        store.append(STREAM_PREFIX + sid, [NewEvent(t, d, m) for t, d, m in mine])
        total += len(mine)
    return total


def naive_replay(store: EventStore) -> int:
    folded = 0
    for stream in store.streams(STREAM_PREFIX):
        project(store.read_stream(stream), stream[len(STREAM_PREFIX):])
        folded += 1
    return folded


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1,000 finished sandboxes")
    p.add_argument("--sandboxes", type=int, default=None)
    p.add_argument("--in-flight", type=int, default=100)
    args = p.parse_args()
    finished = args.sandboxes or (1_000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as tmp:
        work = Path(tmp)
        template = record_template(work)
        state_dir, run = work / "state", work / "run"
        os.makedirs(state_dir, mode=0o700)
        store = EventStore.open(state_dir / "events", durable=False)
        t_fill, total = timed(lambda: populate(store, template, finished, args.in_flight))
        print(f"store: {finished} finished + {args.in_flight} in-flight sandboxes, "
              f"{total:,} events ({len(template)} per lifecycle), written in {t_fill:.1f}s")

        t_naive, folded = timed(lambda: naive_replay(store))
        naive_peak = traced_peak(lambda: naive_replay(store))
        store.close()

        config = dataclasses.replace(RuntimeConfig.default(), hypervisor=dataclasses.replace(
            RuntimeConfig.default().hypervisor, driver="process"))

        def dry() -> None:
            with Runtime.open(state_dir, run, config, recover=False, durable=False) as rt:
                rt.recover(dry_run=True)

        dry_peak = traced_peak(dry)

        def real():
            rt = Runtime.open(state_dir, run, config, recover=False, durable=False)
            return rt, rt.recover()

        t_recover, (rt, report) = timed(real)
        rolled = sum(any("completed" in d for d in s.done) for s in report.sandboxes)
        again = rt.recover()
        rt.close()
        print(f"naive full replay: {folded:,} sandboxes folded in {t_naive:.3f}s "
              f"(tracemalloc peak {naive_peak / 2**20:.1f} MiB)")
        print(f"open + recover():  {t_recover:.3f}s, scanned {report.scanned:,}, "
              f"acted on {len(report.sandboxes)}, rolled forward {rolled}, errors "
              f"{sum(bool(s.error) for s in report.sandboxes)} "
              f"(dry-run tracemalloc peak {dry_peak / 2**20:.1f} MiB)")
        print(f"second recover(): acted on {len(again.sandboxes)}")
        print(f"ratio recover / naive: {t_recover / t_naive:.3f}x (target <= 0.2x)")
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process peak RSS: {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
