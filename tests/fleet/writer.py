"""A host that keeps writing: appends events to its log until SIGTERM.

Run as `python writer.py <events dir> <events per second>`; prints `ready` once the
log exists. Appends go to a few sandbox streams, 1-3 events at a time.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from eventstore import ANY, EventStore, NewEvent  # noqa: E402

stop = False


def _stop(*_: object) -> None:
    global stop
    stop = True


def main(path: str, rate: float) -> None:
    signal.signal(signal.SIGTERM, _stop)
    rng = random.Random()
    with EventStore.open(path, durable=False) as store:
        print("ready", flush=True)
        n = 0
        while not stop:
            events = [NewEvent("Tick", {"n": n + i, "f": rng.random(),
                                        "pad": "x" * rng.randrange(64)})
                      for i in range(rng.randint(1, 3))]
            store.append(f"sandbox-w{rng.randrange(4)}", events, ANY)
            n += len(events)
            time.sleep(len(events) / rate)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
