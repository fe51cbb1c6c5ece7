"""Hash-chain walk: finds the first changed, removed, reordered or inserted record."""

from __future__ import annotations

from .codec import GENESIS, HASH_LEN, POS, chain_hash
from .lmdbenv import Env
from .model import VerifyReport

_CHUNK = 4096


def verify_chain(env: Env, anchor: tuple[int, str] | None) -> VerifyReport:
    """Walk every record; with `anchor` (position, hash hex) also detect truncation."""
    expected, prev = 0, GENESIS
    anchor_pos, anchor_hash = anchor if anchor is not None else (-1, "")
    seen_anchor = False
    while True:
        with env.reading() as txn:
            cur = txn.cursor(db=env.events)
            items = []
            if cur.set_range(POS.pack(expected)) if expected else cur.first():
                for item in cur:
                    items.append(item)
                    if len(items) == _CHUNK:
                        break
        if not items:
            break
        for key, value in items:
            pos = POS.unpack(key)[0] if len(key) == 8 else -1
            if pos != expected:
                return VerifyReport(False, expected, expected,
                                    f"position {expected} is missing (found key {key.hex()})",
                                    expected - 1, prev.hex())
            stored = value[:HASH_LEN]
            if chain_hash(prev, pos, memoryview(value)[HASH_LEN:]) != stored:
                return VerifyReport(False, expected, pos,
                                    f"hash of record at position {pos} does not match its "
                                    "bytes and the previous hash", expected - 1, prev.hex())
            if pos == anchor_pos:
                if stored.hex() != anchor_hash:
                    return VerifyReport(False, expected + 1, pos,
                                        f"hash at anchor position {pos} is {stored.hex()}, "
                                        f"anchor says {anchor_hash}", pos, stored.hex())
                seen_anchor = True
            prev = stored
            expected += 1
    last = expected - 1
    if anchor is not None and not seen_anchor and anchor_pos >= 0:
        return VerifyReport(False, expected, expected,
                            f"store truncated: it ends at position {last}, anchor is at "
                            f"{anchor_pos}", last, prev.hex())
    return VerifyReport(True, expected, None, "", last, prev.hex())
