"""The LMDB environment: opening with the project's flags, growing the map safely."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import lmdb

from .datafile import DATA_FILE, check_data_file
from .errors import EventStoreError, StoreCorrupted

DEFAULT_MAP_SIZE = 16 * 1024**3
DB_NAMES = (b"events", b"index", b"snapshots")
"""events: position -> record. index: stream NUL version -> position, and NUL event id ->
position for ids a caller passed (one B-tree for both, so an append dirties one fewer
tree; generated ids name their position, see ids.py). snapshots: stream -> snapshot."""
T = TypeVar("T")
_DAMAGE = (lmdb.CorruptedError, lmdb.PageNotFoundError)


class Env:
    """One LMDB environment and its sub-dbs; `set_mapsize` waits for local readers."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool, durable: bool,
                 map_size: int | None) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        if readonly and not os.path.exists(os.path.join(self.path, DATA_FILE)):
            raise EventStoreError(f"no event store at {self.path!r} to open read-only")
        check_data_file(self.path)
        try:
            self.env = lmdb.open(
                self.path, map_size=map_size or DEFAULT_MAP_SIZE, max_dbs=len(DB_NAMES) + 2,
                readonly=readonly, create=not readonly, sync=durable, metasync=True,
                writemap=False, max_readers=256)
        except lmdb.Error as exc:
            raise EventStoreError(f"cannot open LMDB environment at {self.path!r}: {exc}") from exc
        self.env.reader_check()
        self._cond = threading.Condition()
        self._readers = 0
        try:
            dbs = [self.env.open_db(n, create=not readonly) for n in DB_NAMES]
        except lmdb.Error as exc:
            self.env.close()
            raise EventStoreError(f"{self.path!r} is not an event store: {exc}") from exc
        self.events, self.index, self.snapshots = dbs

    @contextmanager
    def reading(self) -> Iterator[lmdb.Transaction[bytes]]:
        """A short read txn; a map another process grew is adopted and the txn retried."""
        while True:
            with self._cond:
                self._readers += 1
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                self._leave()
                self._adopt_map_size()
                continue
            except BaseException:
                self._leave()
                raise
            try:
                yield txn
            except _DAMAGE as exc:
                raise StoreCorrupted(f"LMDB reports damage in {self.path!r}: {exc}") from None
            finally:
                txn.abort()
                self._leave()
            return

    def _leave(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def _set_mapsize(self, size: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._readers == 0)
            self.env.set_mapsize(size)

    def _adopt_map_size(self) -> None:
        self._set_mapsize(0)

    def grow(self) -> None:
        """Double the map (writer only, no write txn open)."""
        self._set_mapsize(self.env.info()["map_size"] * 2)

    def write(self, fn: Callable[[lmdb.Transaction[bytes]], T]) -> T:
        """Run `fn` in one write txn and commit; on MapFullError grow and redo it all."""
        while True:
            try:
                txn = self.env.begin(write=True)
            except lmdb.MapResizedError:
                self._adopt_map_size()
                continue
            try:
                result = fn(txn)
                txn.commit()
                return result
            except lmdb.MapFullError:
                txn.abort()
                self.grow()
            except lmdb.Error as exc:    # disk full, I/O error: the caller learns it plainly
                txn.abort()
                raise EventStoreError(f"cannot write to the event store at {self.path!r}: "
                                      f"{exc}") from exc
            except BaseException:
                txn.abort()
                raise

    def close(self) -> None:
        self.env.close()
