"""A damaged log: every command says so in one line and exits 1, `verify` reports what
is wrong, nothing is started over and nothing dies of SIGBUS (issue #11: 5, 15)."""

from __future__ import annotations

import os

import pytest

from eventstore import EventStore, NewEvent

COMMANDS = [["list"], ["state", "x"], ["recover"], ["run", "--", "true"], ["log"]]


def _fill(sbx) -> os.PathLike:
    path = sbx.root / "state" / "events"
    path.mkdir(parents=True)
    with EventStore.open(path, durable=False) as store:
        for i in range(500):
            store.append(f"noise-{i % 20}", [NewEvent("Tick", {"pad": "x" * 200})])
    return path / "data.mdb"


def _one_line_damage(out, what: str) -> None:
    assert out.returncode == 1, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sbx: error: ") and what in lines[0], lines
    assert "unexpected" not in lines[0]


def test_truncated_log(sbx) -> None:
    data = _fill(sbx)
    size = data.stat().st_size
    os.truncate(data, 3 * 4096)
    out = sbx("verify")
    _one_line_damage(out, "verification FAILED")
    assert "truncated" in out.stderr
    for argv in COMMANDS:
        _one_line_damage(sbx(*argv), "truncated")
    assert data.stat().st_size == 3 * 4096 < size


@pytest.mark.parametrize("content", [b"", b"\x00" * 4096], ids=["empty", "zeros"])
def test_log_without_an_environment_is_damaged_not_new(sbx, content: bytes) -> None:
    data = sbx.root / "state" / "events" / "data.mdb"
    data.parent.mkdir(parents=True)
    data.write_bytes(content)
    _one_line_damage(sbx("verify"), "no valid LMDB environment")
    for argv in COMMANDS:
        _one_line_damage(sbx(*argv), "damaged")
    assert data.read_bytes() == content
