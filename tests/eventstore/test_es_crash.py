"""SIGKILL an appending process at random moments; acknowledged appends must survive."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from eventstore import EventStore

KILLS = int(os.environ.get("SBX_CRASH_KILLS", "200"))


def _read_until(proc, prefix: str, acks: list[tuple[int, int, list[str]]]) -> int:
    """Read child lines, collecting acks, until a `<prefix> <pid>` line."""
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"zygote exited while waiting for {prefix!r}")
        word, *rest = line.split()
        if word == "ack":
            acks.append((int(rest[0]), int(rest[1]), rest[2].split(",")))
        elif word == prefix:
            return int(rest[0])


def _check(path: Path, acks: list[tuple[int, int, list[str]]], kill: int) -> int:
    with EventStore.open(path, readonly=True) as store:
        events = list(store.read_all())
        assert [e.position for e in events] == list(range(len(events))), f"kill {kill}"
        for first, last, ids in acks:
            stored = [e.event_id for e in events[first : last + 1]]
            assert stored == ids, f"kill {kill}: acknowledged append at {first} lost"
        versions: dict[str, int] = {}
        for e in events:
            assert e.version == versions.get(e.stream, -1) + 1, f"kill {kill}: {e}"
            versions[e.stream] = e.version
        report = store.verify()
        assert report.ok, f"kill {kill}: {report}"
        return len(events)


@pytest.mark.timeout(600)
def test_sigkill_never_loses_an_acknowledged_append(tmp_path: Path, children) -> None:
    path = tmp_path / "store"
    EventStore.open(path).close()
    zygote = children.start("zygote", path)
    rng = random.Random(0xC0FFEE)
    acks: list[tuple[int, int, list[str]]] = []
    total = 0
    for kill in range(KILLS):
        zygote.stdin.write(f"spawn {kill % 2}\n")
        pid = _read_until(zygote, "pid", acks)
        children.extra_pids.append(pid)
        time.sleep(rng.choice([0, rng.random() * 0.004, rng.random() * 0.03]))
        os.kill(pid, signal.SIGKILL)
        assert _read_until(zygote, "dead", acks) == pid
        children.extra_pids.remove(pid)
        total = _check(path, acks, kill)
    assert acks, "no append was acknowledged in any cycle"
    assert total >= len(acks)
