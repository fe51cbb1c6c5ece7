"""The state and runtime dirs we are given are someone's: never chmod'ed; our own 0700
subdirs go inside; a parent others may write to without the sticky bit is refused
(issue #11: 7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.root
def test_shared_dirs_keep_their_mode_and_get_private_subdirs(sbx, tmp_path: Path) -> None:
    sticky, public = tmp_path / "s", tmp_path / "p"     # short: socket paths < 108 bytes
    sticky.mkdir()
    public.mkdir()
    os.chmod(sticky, 0o1777)             # like /tmp
    os.chmod(public, 0o755)              # like /run
    env = {"SBX_STATE_DIR": str(sticky), "SBX_RUNTIME_DIR": str(public)}
    out = sbx("run", "--id", "x", "--", "echo", "hi", env=env)
    assert (out.returncode, out.stdout) == (0, "hi\n"), out.stderr
    assert (_mode(sticky), _mode(public)) == (0o1777, 0o755)
    assert _mode(sticky / "events") == 0o700 and _mode(public / "sandboxes") == 0o700
    assert sorted(os.listdir(public)) == ["sandboxes", "sock"]   # sock/: host/layout.py
    assert _mode(public / "sock") == 0o700


@pytest.mark.root
@pytest.mark.parametrize("mode", [0o775, 0o777, 0o2770])
def test_group_or_world_writable_parent_is_refused(sbx, tmp_path: Path, mode: int) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, mode)
    for env in ({"SBX_STATE_DIR": str(loose / "state")},
                {"SBX_RUNTIME_DIR": str(loose / "run")}, {"SBX_STATE_DIR": str(loose)}):
        out = sbx("run", "--", "true", env=env)
        assert out.returncode == 2, out.stderr
        assert "without the sticky bit" in out.stderr and len(out.stderr.splitlines()) == 1
    assert os.listdir(loose) == [] and _mode(loose) == mode


@pytest.mark.root
def test_existing_private_dir_open_to_others_is_refused_not_chmoded(sbx) -> None:
    events = sbx.root / "state" / "events"
    events.mkdir(parents=True)
    os.chmod(events, 0o777)
    out = sbx("recover")
    assert out.returncode == 2 and "writable by group or others" in out.stderr
    assert _mode(events) == 0o777 and os.listdir(events) == []
