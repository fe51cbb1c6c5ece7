"""The LMDB data file checked before LMDB maps it.

LMDB maps `data.mdb` and trusts its meta pages: a file cut shorter than the pages the
newest meta says are in use kills the process with SIGBUS on the first read past its
end, and a file of zero bytes is taken for a new environment and silently started over.
Both are damage, so the two meta pages are read with plain reads first and the file's
length is checked against them.
"""

from __future__ import annotations

import os
import struct

from .errors import StoreCorrupted, StoreTruncated

DATA_FILE = "data.mdb"
_MAGIC = 0xBEEFC0DE
_DATA_VERSION = 1
_PAGE_HEADER = 16
# MDB_meta after the page header: magic u32, version u32, address, mapsize, then two
# MDB_db of 48 bytes (the first one's md_pad is the page size), last page, txn id.
_META = struct.Struct("<II8x8xI44x48xQQ")
_MIN_PAGE, _MAX_PAGE = 512, 65536


def _meta(raw: bytes, offset: int) -> tuple[int, int, int] | None:
    """(page size, last used page, txn id) of a valid meta page at offset, else None."""
    if len(raw) < offset + _PAGE_HEADER + _META.size:
        return None
    magic, version, psize, last_page, txnid = _META.unpack_from(raw, offset + _PAGE_HEADER)
    if magic != _MAGIC or version != _DATA_VERSION:
        return None
    if not _MIN_PAGE <= psize <= _MAX_PAGE or psize & (psize - 1):
        return None
    return psize, last_page, txnid


def check_data_file(env_dir: str) -> None:
    """Raise StoreCorrupted when `env_dir/data.mdb` exists without a valid environment,
    StoreTruncated when it is shorter than the pages its newest meta page uses."""
    path = os.path.join(env_dir, DATA_FILE)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(2 * _MAX_PAGE)
    except FileNotFoundError:
        return
    first = _meta(head, 0)
    if first is None:
        raise StoreCorrupted(f"{path!r} ({size} bytes) holds no valid LMDB environment: "
                             "the event store is damaged")
    second = _meta(head, first[0])
    psize, last_page, _ = max((m for m in (first, second) if m is not None),
                              key=lambda m: m[2])
    needed = (last_page + 1) * psize
    if size < needed:
        raise StoreTruncated(f"{path!r} is truncated: {size} bytes, but its environment "
                             f"uses {last_page + 1} pages of {psize} bytes ({needed} bytes)")
