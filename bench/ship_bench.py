"""Shipping benchmark: `sbx ship` throughput against a bare nats-py loop, and follow lag.

1. A 100k-event log (lifecycle-sized payloads, a few streams) is shipped to a fresh
   JetStream stream by `Shipper(...).run(until_caught_up=True)` with acknowledgements;
   the anchor, in the same run against the same nats-server, is a bare nats-py loop
   publishing the same payloads and headers with `publish_async` and the same bound on
   unacknowledged messages, to a stream of its own. Rounds alternate the two. Prints
   events/s of each and shipper / bare (the ratio).
2. Follow mode: a shipper follows the log while real lifecycles (bench/lifecycle_bench.py)
   write it; the lag of each event is the stream's store time minus the event's
   recorded_at. Prints the median and p99 lag.

Starts its own nats-server on a free loopback port with a private store; removes it all.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nats  # noqa: E402
from lifecycle_bench import Counted, lifecycle, scrub  # noqa: E402

from eventstore import ANY, EventStore, NewEvent  # noqa: E402
from sandbox_fsm import Runtime, RuntimeConfig  # noqa: E402
from sandbox_fsm.fleet import NatsOptions, Shipper, wire  # noqa: E402

IN_FLIGHT = 256


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(root / "nats-server.log", "wb") as log:
        proc = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port),
                                 "-sd", str(root / "js")], stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nats-server did not start: " + (root / "nats-server.log").read_text())


def build_log(path: Path, events: int) -> None:
    """Lifecycle-like events (about 300 bytes) in 100-event non-durable appends."""
    with EventStore.open(path, durable=False) as store:
        for base in range(0, events, 100):
            store.append(f"sandbox-b{base // 100 % 50}", [
                NewEvent("StepStarted", {"op": "8991261ffa95458885961fc6fa62b2f9", "index": i,
                                         "step": "mount_shared_dir",
                                         "args": {"path": f"/run/sbx/sandboxes/b{i}/shared",
                                                  "options": ["bind", "ro"]}})
                for i in range(base, min(base + 100, events))], ANY)


async def bare_loop(url: str, path: Path, stream: str) -> float:
    """The anchor: pre-encoded messages, publish_async, IN_FLIGHT unacknowledged at most."""
    with EventStore.open(path, readonly=True) as store:
        prev, msgs = "00" * 32, []
        for e in store.read_all():
            msgs.append((wire.subject_of("bare", e.stream).replace("sbx.", "bare.", 1),
                         wire.canonical_body(e), wire.headers_of("bare", e, prev)))
            prev = e.hash
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=IN_FLIGHT)
    await js.add_stream(name=stream, subjects=["bare.>"])
    t0 = time.perf_counter()
    for subject, body, headers in msgs:
        await js.publish_async(subject, body, headers=headers)
    await js.publish_async_completed()
    seconds = time.perf_counter() - t0
    await js.delete_stream(stream)
    await nc.close()
    return len(msgs) / seconds


async def ship_once(url: str, path: Path, stream: str, events: int) -> float:
    with EventStore.open(path, readonly=True) as store:
        shipper = Shipper(store, NatsOptions.parse(url), "bench", stream=stream,
                          max_in_flight=IN_FLIGHT)
        t0 = time.perf_counter()
        status = await shipper.run(until_caught_up=True)
        seconds = time.perf_counter() - t0
    if status.shipped != events - 1:
        raise SystemExit(f"shipped through {status.shipped}, expected {events - 1}")
    nc = await nats.connect(url)
    await nc.jetstream().delete_stream(stream)
    await nc.close()
    return events / seconds


async def stream_lags(url: str, stream: str) -> list[float]:
    """Seconds from each event's recorded_at to its store time in the stream."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    total = (await js.stream_info(stream)).state.messages
    sub = await js.subscribe("sbx.events.>", stream=stream, ordered_consumer=True)
    lags = []
    for _ in range(total):
        m = await sub.next_msg(timeout=10)
        event = wire.shipped_from(0, m.subject, m.headers, m.data).event()
        if event.stream == "sandbox-warmup":    # written before the shipper started
            continue
        recorded = event.recorded_at
        lags.append(m.metadata.timestamp.timestamp() - recorded / 1e9)
    await nc.close()
    return lags


def follow_lag(url: str, root: Path, sandboxes: int, driver: str) -> list[float]:
    base = RuntimeConfig.default()
    config = dataclasses.replace(base, hypervisor=dataclasses.replace(base.hypervisor,
                                                                      driver=driver))
    counted = Counted(Runtime.open(root / "live" / "state", root / "live-run", config))
    loop = asyncio.new_event_loop()
    done = asyncio.Event()

    def ship() -> None:     # one LMDB environment per process: the runtime's own store
        shipper = Shipper(counted.rt.store, NatsOptions.parse(url), "live", stream="LIVE")
        loop.run_until_complete(shipper.run(stop=done))

    thread = threading.Thread(target=ship)
    try:
        lifecycle(counted, "warmup")
        thread.start()
        for i in range(sandboxes):
            lifecycle(counted, f"live{i}")
        time.sleep(1.0)
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join()
        counted.rt.close()
        scrub(root / "live-run")      # not root: the nats-server's command line names it
    return asyncio.run(stream_lags(url, "LIVE"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sandboxes", type=int, default=10, help="lifecycles for the lag")
    parser.add_argument("--driver", choices=["namespaces", "process"],
                        default="namespaces" if os.geteuid() == 0 else "process")
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ship-bench-", dir=args.dir))
    server, url = start_server(root)
    try:
        build_log(root / "log", args.events)
        bare, shipped = [], []
        for r in range(args.rounds):
            order = ("bare", "ship") if r % 2 == 0 else ("ship", "bare")
            for which in order:
                name = f"B{r}{which.upper()}"
                if which == "bare":
                    bare.append(asyncio.run(bare_loop(url, root / "log", name)))
                else:
                    shipped.append(asyncio.run(ship_once(url, root / "log", name,
                                                         args.events)))
        lags = sorted(follow_lag(url, root, args.sandboxes, args.driver))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        shutil.rmtree(root, ignore_errors=True)
    ratio = statistics.median(shipped) / statistics.median(bare)
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    print(f"ship bench: {args.events} events, {args.rounds} rounds, {IN_FLIGHT} in flight")
    print(f"bare nats-py publish_async + acks: {statistics.median(bare):,.0f} events/s")
    print(f"sbx ship (read, re-encode, hash check, publish, acks in order): "
          f"{statistics.median(shipped):,.0f} events/s; ratio ship/bare {ratio:.3f}")
    print(f"follow lag over {len(lags)} lifecycle events ({args.sandboxes} sandboxes, "
          f"{args.driver}): median {statistics.median(lags) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms")
    print(json.dumps({"bench": "ship", "events": args.events, "in_flight": IN_FLIGHT,
                      "bare_eps": [round(x) for x in bare], "ship_eps": [round(x) for x in
                                                                        shipped],
                      "ratio": round(ratio, 4), "lag_ms": {
                          "median": round(statistics.median(lags) * 1000, 2),
                          "p99": round(p99 * 1000, 2), "max": round(lags[-1] * 1000, 2),
                          "events": len(lags)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
