"""One writer process, two read-only follow() processes, a map that grows meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstore import EventStore

N = 300
SMALL_MAP = 256 * 1024  # 300 events of 2 KB force the writer to grow the map


@pytest.mark.timeout(120)
def test_followers_see_every_event_once_in_order(tmp_path: Path, children) -> None:
    path = tmp_path / "store"
    EventStore.open(path, map_size=SMALL_MAP).close()
    followers = [children.start("follower", path, N, SMALL_MAP) for _ in range(2)]
    for f in followers:
        assert f.stdout.readline().strip() == "ready"
    writer = children.start("writer", path, N, SMALL_MAP)
    assert writer.stdout.readline().strip() == "done"
    assert writer.wait(timeout=30) == 0
    with EventStore.open(path, readonly=True, map_size=SMALL_MAP) as store:
        expected = [[e.position, e.event_id, e.data["i"]] for e in store.read_all()]
        assert store.verify().ok
    assert [i for _, _, i in expected] == list(range(N))
    for f in followers:
        seen = json.loads(f.stdout.readline())
        assert f.wait(timeout=30) == 0
        assert seen == expected
