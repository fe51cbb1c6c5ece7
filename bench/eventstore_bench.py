"""Event store benchmark: every figure next to its anchor, measured in the same run.

Prints a table and a final JSON line. Runs on a temp dir on disk (/var/tmp), never
tmpfs, since durable figures are only meaningful against a real flush.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lmdb  # noqa: E402
import msgpack  # noqa: E402

from eventstore import EventStore, NewEvent  # noqa: E402

DATA = {"sandbox": "sb-0123456789abcdef", "op": "op-42", "step": "start_proxy",
        "args": {"path": "/run/sbx/sb-0123456789abcdef/proxy.sock", "pid": 12345,
                 "start_time": 987654321, "url": "unix:///run/sbx/agent.sock"},
        "note": "x" * 120}
META = {"actor": "bench", "correlation": "c-1"}

try:  # the peer library is optional (bench extra)
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Sandbox(Aggregate):
        @event("StepStarted")
        def step(self, data: dict) -> None:
            self.last = data
except ImportError:
    Application = None  # type: ignore[assignment,misc]


def fresh(root: str, name: str) -> str:
    path = tempfile.mkdtemp(prefix=name, dir=root)
    return path


def store_single(root: str, n: int) -> float:
    """Durable appends, one event per call; returns events/s."""
    path = fresh(root, "single")
    with EventStore.open(path) as store:
        store.append("warm", [NewEvent("Warm", DATA, META)])
        t = time.perf_counter()
        for _ in range(n):
            store.append("s", [NewEvent("StepStarted", DATA, META)])
        rate = n / (time.perf_counter() - t)
    shutil.rmtree(path)
    return rate


def sample_value(root: str) -> bytes:
    path = fresh(root, "sample")
    with EventStore.open(path, durable=False) as store:
        store.append("s", [NewEvent("StepStarted", DATA, META)])
    env = lmdb.open(path, readonly=True, max_dbs=8, map_size=16 << 30, lock=False)
    with env.begin() as txn:
        value = txn.get(struct.pack(">Q", 0), db=env.open_db(b"events", txn=txn, create=False))
    env.close()
    shutil.rmtree(path)
    return value


def raw_single(root: str, n: int, value: bytes) -> float:
    """Raw py-lmdb: one put of the same bytes + durable commit per event; events/s."""
    path = fresh(root, "raw")
    env = lmdb.open(path, map_size=16 << 30, max_dbs=8)
    db = env.open_db(b"events")
    with env.begin(write=True) as txn:
        txn.put(struct.pack(">Q", 0), value, db=db)
    t = time.perf_counter()
    for i in range(1, n + 1):
        with env.begin(write=True) as txn:
            txn.put(struct.pack(">Q", i), value, db=db, append=True)
    rate = n / (time.perf_counter() - t)
    env.close()
    shutil.rmtree(path)
    return rate


def raw_batched(root: str, n: int, value: bytes, per_txn: int = 100) -> float:
    """Raw py-lmdb from one thread: the same bytes, `per_txn` puts per durable commit."""
    path = fresh(root, "rawbatch")
    env = lmdb.open(path, map_size=16 << 30, max_dbs=8)
    db = env.open_db(b"events")
    pack = struct.Struct(">Q").pack
    t = time.perf_counter()
    for start in range(0, n, per_txn):
        with env.begin(write=True) as txn:
            for i in range(start, min(start + per_txn, n)):
                txn.put(pack(i), value, db=db, append=True)
    rate = n / (time.perf_counter() - t)
    env.close()
    shutil.rmtree(path)
    return rate


def _written() -> int:
    """Bytes this process passed to write syscalls (LMDB writes dirty pages with them)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


def pages_per_commit(root: str, value: bytes, n: int = 200) -> tuple[float, float]:
    """(store, raw) 4 KiB pages written per durable single-append commit.

    Both start from 20,000 events (the store's in 200 streams) so their trees have the
    depth a used store has; the meta page update is a few bytes, so bytes / 4096 counts
    the dirty pages a commit writes.
    """
    path = fresh(root, "pages")
    with EventStore.open(path) as store:
        for start in range(0, 20_000, 100):
            store.append(f"sandbox-{start // 100}",
                         [NewEvent("StepStarted", DATA, META) for _ in range(100)])
        before = _written()
        for _ in range(n):
            store.append("sandbox-7", [NewEvent("StepStarted", DATA, META)])
        store_pages = (_written() - before) / n / 4096
    shutil.rmtree(path)
    path = fresh(root, "rawpages")
    env = lmdb.open(path, map_size=16 << 30, max_dbs=8)
    db = env.open_db(b"events")
    pack = struct.Struct(">Q").pack
    with env.begin(write=True) as txn:
        for i in range(20_000):
            txn.put(pack(i), value, db=db, append=True)
    before = _written()
    for i in range(20_000, 20_000 + n):
        with env.begin(write=True) as txn:
            txn.put(pack(i), value, db=db, append=True)
    raw_pages = (_written() - before) / n / 4096
    env.close()
    shutil.rmtree(path)
    return store_pages, raw_pages


def store_threads(root: str, threads: int, per_thread: int) -> float:
    """Durable single appends from many threads (group commit); events/s."""
    path = fresh(root, f"t{threads}")
    with EventStore.open(path) as store:
        store.append("warm", [NewEvent("Warm", DATA, META)])
        barrier = threading.Barrier(threads + 1)

        def work(k: int) -> None:
            barrier.wait()
            for _ in range(per_thread):
                store.append(f"sandbox-{k}", [NewEvent("StepStarted", DATA, META)])

        pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for th in pool:
            th.start()
        barrier.wait()
        t = time.perf_counter()
        for th in pool:
            th.join()
        rate = threads * per_thread / (time.perf_counter() - t)
    shutil.rmtree(path)
    return rate


def sqlite_single(root: str, n: int) -> float:
    path = fresh(root, "sqlite")
    con = sqlite3.connect(os.path.join(path, "db.sqlite"), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE ev (pos INTEGER PRIMARY KEY, stream TEXT, data BLOB)")
    blob = msgpack.packb([DATA, META])
    t = time.perf_counter()
    for _ in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO ev (stream, data) VALUES (?, ?)", ("s", blob))
        con.execute("COMMIT")
    rate = n / (time.perf_counter() - t)
    con.close()
    shutil.rmtree(path)
    return rate


def eventsourcing_single(root: str, n: int) -> float:
    path = fresh(root, "es")
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                           "SQLITE_DBNAME": os.path.join(path, "es.sqlite")})
    agg = Sandbox()
    app.save(agg)
    t = time.perf_counter()
    for _ in range(n):
        agg.step(DATA)
        app.save(agg)
    rate = n / (time.perf_counter() - t)
    app.close()
    shutil.rmtree(path)
    return rate


def populate(root: str, n: int) -> tuple[str, str]:
    """A store of n events (1% of type 'Rare') and a raw env of the same records."""
    path = fresh(root, "read")
    batch = 500
    with EventStore.open(path, durable=False) as store:
        for start in range(0, n, batch):
            events = [NewEvent("Rare" if (start + i) % 100 == 7 else "StepStarted",
                               {**DATA, "i": start + i}, META) for i in range(batch)]
            store.append(f"sandbox-{(start // batch) % 1000}", events)
        raw_path = fresh(root, "rawread")
        raw = lmdb.open(raw_path, map_size=16 << 30, max_dbs=8, sync=False)
        db = raw.open_db(b"events")
        txn = raw.begin(write=True)
        for e in store.read_all():
            txn.put(struct.pack(">Q", e.position), msgpack.packb(
                [e.stream, e.version, e.type, e.event_id, e.recorded_at, e.schema, e.hash,
                 e.data, e.metadata]), db=db, append=True)
        txn.commit()
        raw.sync(True)
        raw.close()
    return path, raw_path


def read_store(path: str, types: list[str] | None) -> float:
    with EventStore.open(path, readonly=True) as store:
        t = time.perf_counter()
        count = 0
        for e in store.read_all(types=types):
            e.data["i"]
            count += 1
        elapsed = time.perf_counter() - t
    return elapsed


def read_raw(path: str) -> float:
    env = lmdb.open(path, readonly=True, max_dbs=8, map_size=16 << 30)
    db = env.open_db(b"events", create=False)
    unpackb = msgpack.unpackb
    t = time.perf_counter()
    with env.begin(db=db) as txn:
        for value in txn.cursor().iternext(keys=False, values=True):
            unpackb(value)[7]["i"]
    elapsed = time.perf_counter() - t
    env.close()
    return elapsed


def measurements(root: str, value: bytes, n_single: int, per_thread: tuple[int, int],
                 store_path: str, raw_path: str) -> list[tuple[str, Callable[[], float]]]:
    """One round: (name, fn) pairs; append figures are events/s, read figures seconds."""
    out: list[tuple[str, Callable[[], float]]] = [
        ("single", lambda: store_single(root, n_single)),
        ("raw", lambda: raw_single(root, n_single, value)),
        ("t8", lambda: store_threads(root, 8, per_thread[0])),
        ("t32", lambda: store_threads(root, 32, per_thread[1])),
        ("raw_batch100", lambda: raw_batched(root, 32 * per_thread[1] * 10, value)),
        ("sqlite", lambda: sqlite_single(root, n_single)),
        ("read_all", lambda: read_store(store_path, None)),
        ("raw_read", lambda: read_raw(raw_path)),
        ("filtered", lambda: read_store(store_path, ["Rare"])),
    ]
    if Application is not None:
        out.append(("eventsourcing", lambda: eventsourcing_single(root, n_single)))
    return out


def filesystem_of(path: str) -> str:
    """Type of the filesystem holding `path` (longest matching mount point)."""
    best, fstype = "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, mount, kind, *_ = line.split()
            under = path == mount or path.startswith(mount.rstrip("/") + "/")
            if under and len(mount) > len(best):
                best, fstype = mount, kind
    return fstype


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes; under 60 s")
    ap.add_argument("--dir", default="/var/tmp", help="parent of the temp dir (on disk)")
    args = ap.parse_args()
    reps = 5
    n_single = 200 if args.quick else 600
    per_thread = (60, 20) if args.quick else (200, 60)
    n_read = 200_000 if args.quick else 1_000_000
    fstype = filesystem_of(os.path.realpath(args.dir))
    if fstype in ("tmpfs", "ramfs"):
        raise SystemExit(f"eventstore_bench: {args.dir} is on {fstype}; durable figures need a "
                         "disk (use --dir)")
    print(f"temp dir under {args.dir} ({fstype}); repetitions: {reps}")
    root = tempfile.mkdtemp(prefix="sbx-eventstore-bench-", dir=args.dir)
    try:
        value = sample_value(root)
        store_pages, raw_pages = pages_per_commit(root, value)
        store_path, raw_path = populate(root, n_read)
        rounds: dict[str, list[float]] = {}
        for _ in range(reps):  # every figure once per round, so load shifts hit all alike
            for name, fn in measurements(root, value, n_single, per_thread, store_path,
                                         raw_path):
                rounds.setdefault(name, []).append(fn())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in rounds.items()}
    single, raw, t8, t32, sq, batch = (
        med[k] for k in ("single", "raw", "t8", "t32", "sqlite", "raw_batch100"))
    es = med.get("eventsourcing")
    full, rawt, filt = med["read_all"], med["raw_read"], med["filtered"]

    fig = {
        "single_append_per_s": single, "raw_lmdb_commit_per_s": raw,
        "single_vs_raw": single / raw,
        "threads8_per_s": t8, "threads8_vs_single": t8 / single,
        "threads32_per_s": t32, "threads32_vs_single": t32 / single,
        "raw_lmdb_100_per_txn_per_s": batch, "threads32_vs_raw_100_per_txn": t32 / batch,
        "pages_per_single_append": store_pages, "pages_per_raw_commit": raw_pages,
        "sqlite_wal_full_per_s": sq, "single_vs_sqlite": single / sq,
        "threads32_vs_sqlite": t32 / sq,
        "eventsourcing_sqlite_per_s": es,
        "threads32_vs_eventsourcing": t32 / es if es else None,
        "single_vs_eventsourcing": single / es if es else None,
        "read_events": n_read, "read_all_per_s": n_read / full,
        "raw_scan_unpack_per_s": n_read / rawt, "read_all_vs_raw": rawt / full,
        "filtered_read_per_s": n_read / filt, "filtered_vs_raw": rawt / filt,
    }
    targets = {"single_vs_raw": 0.8, "threads8_vs_single": 5, "threads32_vs_single": 15,
               "threads32_vs_raw_100_per_txn": 0.5,
               "threads32_vs_eventsourcing": 10, "read_all_vs_raw": 0.7,
               "filtered_vs_raw": 3}
    print(f"{'figure':32} {'value':>14} {'target':>8}")
    for key, val in fig.items():
        shown = "n/a" if val is None else (f"{val:,.0f}" if val >= 100 else f"{val:.2f}")
        goal = targets.get(key)
        mark = "" if goal is None or val is None else (" ok" if val >= goal else " MISS")
        print(f"{key:32} {shown:>14} {'' if goal is None else f'>={goal}':>8}{mark}")
    print(json.dumps({"bench": "eventstore", "quick": args.quick, "fs": fstype, **fig}))


if __name__ == "__main__":
    main()
