"""Group commit from many threads: nothing lost or duplicated, conflicts isolated."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from eventstore import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion

THREADS = 8


def _run(n: int, fn: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            fn(k)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    pool = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not errors, errors


def test_eight_threads_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    per = 40
    with EventStore.open(tmp_path) as store:
        def work(k: int) -> None:
            for i in range(per):
                store.append(f"own-{k}", [NewEvent("Own", {"k": k, "i": i})])
                store.append("shared", [NewEvent("Shared", {"k": k, "i": i}),
                                        NewEvent("Shared", {"k": k, "i": i, "second": True})])

        _run(THREADS, work)
        events = list(store.read_all())
        assert len(events) == THREADS * per * 3
        assert len({e.event_id for e in events}) == len(events)
        for k in range(THREADS):
            own = list(store.read_stream(f"own-{k}"))
            assert [e.data["i"] for e in own] == list(range(per))
            assert [e.version for e in own] == list(range(per))
        shared = list(store.read_stream("shared"))
        assert [e.version for e in shared] == list(range(THREADS * per * 2))
        for first, second in zip(shared[::2], shared[1::2], strict=True):  # appends stay whole
            assert second.position == first.position + 1 and second.data["second"]
        assert store.verify().ok
        batches, requests = store.commit_stats()
        assert requests == THREADS * per * 2 and batches <= requests


def test_conflicting_writers_get_wrong_expected_version(tmp_path: Path) -> None:
    rounds = 5
    with EventStore.open(tmp_path) as store:
        barrier = threading.Barrier(THREADS)
        wins: list[tuple[int, int]] = []
        losses: list[WrongExpectedVersion] = []
        lock = threading.Lock()

        def work(k: int) -> None:
            for r in range(rounds):
                barrier.wait()
                expected = NO_STREAM if r == 0 else r - 1
                try:
                    store.append("race", [NewEvent("Won", {"k": k, "r": r})], expected)
                    with lock:
                        wins.append((r, k))
                except WrongExpectedVersion as exc:
                    with lock:
                        losses.append(exc)
                    assert exc.stream == "race" and exc.expected == expected
                    assert exc.actual == r

        _run(THREADS, work)
        assert sorted(r for r, _ in wins) == list(range(rounds))
        assert len(losses) == rounds * (THREADS - 1)
        assert [e.data["r"] for e in store.read_stream("race")] == list(range(rounds))


def test_concurrent_idempotent_retries_store_once(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    results = []
    with EventStore.open(tmp_path) as store:
        barrier = threading.Barrier(THREADS)

        def work(k: int) -> None:
            barrier.wait()
            results.append(store.append("once", [NewEvent("E", {"n": n}, event_id=i)
                                                 for n, i in enumerate(ids)]))

        _run(THREADS, work)
        assert len(set(results)) == 1
        assert [e.event_id for e in store.read_all()] == ids
