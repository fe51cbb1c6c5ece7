"""Child processes for the event store tests, run as `python es_procs.py <role> ...`.

Roles:
  zygote <path>      imports eventstore (no environment open), then per stdin line
                     `spawn <durable 0|1>` forks an appender, prints `pid <pid>`, waits
                     for it and prints `dead <pid>`. Forking is safe: the zygote never
                     opens an environment; each appender opens its own.
  writer <path> <n> <map_size>       appends n events in small random appends.
  follower <path> <n> <map_size>     read-only follow() until n events; prints them.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from eventstore import ANY, EventStore, NewEvent  # noqa: E402


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _appender(path: str, durable: bool) -> None:
    """Append forever; report every acknowledged append as `ack first last id,id`."""
    rng = random.Random()
    with EventStore.open(path, durable=durable) as store:
        while True:
            streams = rng.sample(["a", "b", "c", "d", "e"], rng.choice([1, 1, 2]))
            batches = [[NewEvent("Tick", {"n": rng.random(), "pad": "x" * rng.randrange(200)},
                                 event_id=str(uuid.uuid4()))
                        for _ in range(rng.randint(1, 3))] for _ in streams]
            if len(streams) == 1:
                results = [store.append(streams[0], batches[0], ANY)]
            else:
                results = store.append_multi(
                    [(s, b, ANY) for s, b in zip(streams, batches, strict=True)])
            for r, b in zip(results, batches, strict=True):
                ids = ",".join(str(e.event_id) for e in b)
                _say(f"ack {r.first_position} {r.last_position} {ids}")


def zygote(path: str) -> None:
    for line in sys.stdin:
        durable = line.split()[1] == "1"
        pid = os.fork()
        if pid == 0:
            try:
                _appender(path, durable)
            finally:
                os._exit(1)
        _say(f"pid {pid}")
        os.waitpid(pid, 0)
        _say(f"dead {pid}")


def writer(path: str, n: int, map_size: int) -> None:
    rng = random.Random()
    with EventStore.open(path, map_size=map_size) as store:
        written = 0
        while written < n:
            k = min(rng.randint(1, 3), n - written)
            store.append(f"w-{rng.randrange(4)}",
                         [NewEvent("Big", {"i": written + i, "pad": "p" * 2000}) for i in range(k)])
            written += k
            time.sleep(rng.random() * 0.002)
    _say("done")


def follower(path: str, n: int, map_size: int) -> None:
    seen: list[list] = []
    with EventStore.open(path, readonly=True, map_size=map_size) as store:
        _say("ready")
        for e in store.follow(0, poll_interval=0.005, stop=lambda: len(seen) >= n):
            seen.append([e.position, e.event_id, e.data["i"]])
            if len(seen) >= n:
                break
    _say(json.dumps(seen))


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "zygote":
        zygote(args[0])
    elif role == "writer":
        writer(args[0], int(args[1]), int(args[2]))
    elif role == "follower":
        follower(args[0], int(args[1]), int(args[2]))
    else:
        raise SystemExit(f"es_procs.py: unknown role {role!r}")
