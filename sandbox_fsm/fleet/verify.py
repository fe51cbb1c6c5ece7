"""`fleet verify`: each host's chain as the stream holds it.

Per host, in stream order: a position seen twice (a resend that escaped deduplication,
or a forgery under a new message id: the data differ), a position stored after a later
one (reordered); then in position order: missing positions (gaps), a hash that is not
the hash of the message's bytes, a previous hash that is not the previous message's
hash; and, given checkpoints taken on the hosts (`sbx checkpoint`), that the stream
reaches each one with the same hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .wire import Shipped, chains

GENESIS = "00" * 32


@dataclass(frozen=True)
class Finding:
    host: str
    position: int
    seq: int            # stream sequence of the message concerned (0: none)
    problem: str

    def line(self) -> str:
        at = f" (stream seq {self.seq})" if self.seq else ""
        return f"host {self.host} position {self.position}{at}: {self.problem}"


@dataclass
class HostReport:
    host: str
    messages: int = 0
    last_position: int = -1
    last_hash: str = GENESIS
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def verify_host(host: str, messages: Iterable[Shipped],
                anchor: tuple[int, str] | None = None) -> HostReport:
    report = HostReport(host)
    firsts: dict[int, Shipped] = {}
    highest = -1
    for m in messages:
        report.messages += 1
        first = firsts.get(m.position)
        if first is not None:
            same = first.hash == m.hash and first.body == m.body
            report.findings.append(Finding(host, m.position, m.seq, (
                "stored twice (same data)" if same else
                f"republished with different data (first copy at stream seq {first.seq}, "
                f"message id {m.msg_id!r})")))
            continue
        firsts[m.position] = m
        if m.position < highest:
            report.findings.append(Finding(host, m.position, m.seq,
                                           f"reordered: stored after position {highest}"))
        highest = max(highest, m.position)
    _walk(report, firsts, highest)
    if anchor is not None:
        _check_anchor(report, firsts, anchor)
    return report


def _walk(report: HostReport, firsts: dict[int, Shipped], highest: int) -> None:
    prev, missing_from = GENESIS, None
    for position in range(highest + 1):
        m = firsts.get(position)
        if m is None:
            missing_from = position if missing_from is None else missing_from
            continue
        if missing_from is not None:
            report.findings.append(Finding(report.host, missing_from, 0,
                                           f"missing positions {missing_from}..{position - 1}"))
            missing_from = None
        elif m.prev_hash != prev:
            report.findings.append(Finding(report.host, position, m.seq,
                                           "previous hash does not chain to the message at "
                                           f"position {position - 1}"))
        if not chains(m.prev_hash, position, m.body, m.hash):
            report.findings.append(Finding(report.host, position, m.seq,
                                           "hash does not match the message's data"))
        prev = m.hash
    report.last_position, report.last_hash = highest, prev


def _check_anchor(report: HostReport, firsts: dict[int, Shipped],
                  anchor: tuple[int, str]) -> None:
    position, digest = anchor
    if position < 0:
        return
    m = firsts.get(position)
    if m is None:
        report.findings.append(Finding(report.host, position, 0,
                                       "the host's checkpoint is at this position, the stream "
                                       f"holds it only up to {report.last_position}"))
    elif m.hash != digest:
        report.findings.append(Finding(report.host, position, m.seq,
                                       f"hash {m.hash[:16]}... differs from the host's "
                                       f"checkpoint {digest[:16]}..."))


def verify_fleet(messages: Iterable[Shipped], anchors: dict[str, tuple[int, str]] | None = None
                 ) -> list[HostReport]:
    """One report per host found in the stream (or named by a checkpoint)."""
    anchors = anchors or {}
    per_host: dict[str, list[Shipped]] = {h: [] for h in anchors}
    for m in messages:
        per_host.setdefault(m.host, []).append(m)
    return [verify_host(h, per_host[h], anchors.get(h)) for h in sorted(per_host)]
