"""The CLI's pure helpers and sandbox_fsm.audit/bundle without processes."""

from __future__ import annotations

import pytest
from hostcheck import busybox_tree

from eventstore import RecordedEvent
from sandbox_fsm import InvalidRequest
from sandbox_fsm.audit import diagram, parse_at, path_taken, state_at, timeline
from sandbox_fsm.bundle import BUNDLE_ANNOTATION, configs_from_spec
from sandbox_fsm.cli.context import default_dirs
from sandbox_fsm.cli.oci import parse_signal
from sandbox_fsm.cli.run import parse_volume


def test_default_dirs():
    assert default_dirs({}, 0) == ("/var/lib/sbx", "/run/sbx")
    assert default_dirs({"HOME": "/home/u"}, 1000) == ("/home/u/.local/state/sbx",
                                                       "/tmp/sbx-1000")
    assert default_dirs({"XDG_STATE_HOME": "/s", "XDG_RUNTIME_DIR": "/r"}, 1000) == (
        "/s/sbx", "/r/sbx")
    assert default_dirs({"SBX_STATE_DIR": "/a", "SBX_RUNTIME_DIR": "/b"}, 0) == ("/a", "/b")


@pytest.mark.parametrize(("text", "num"), [("TERM", 15), ("SIGKILL", 9), ("int", 2), ("9", 9)])
def test_parse_signal(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["NOPE", "0", "999", ""])
def test_parse_signal_rejects(text):
    with pytest.raises(InvalidRequest, match="unknown signal"):
        parse_signal(text)


def test_parse_volume(tmp_path):
    m = parse_volume(f"{tmp_path}:/data:ro")
    assert (m.source, m.destination, m.readonly) == (str(tmp_path), "/data", True)
    assert parse_volume(f"{tmp_path}:/data").readonly is False


def test_bundle_spec_to_configs(tmp_path):
    busybox_tree(tmp_path / "rootfs")
    spec = {"process": {"args": ["sh"], "env": ["A=1=2"], "cwd": "/w",
                        "user": {"uid": 5, "gid": 6}, "terminal": True},
            "root": {"path": "rootfs"}, "hostname": "h", "annotations": {"k": "v"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/d", "source": "data", "options": ["rbind", "ro"]}],
            "linux": {"resources": {"memory": {"limit": 1}}}}
    sandbox, container = configs_from_spec(spec, str(tmp_path), "c1", where="cfg")
    assert sandbox.id == container.id == "c1" and sandbox.hostname == "h"
    assert sandbox.annotations == {"k": "v", BUNDLE_ANNOTATION: str(tmp_path)}
    assert (container.args, container.env, container.cwd, container.user) == (
        ("sh",), {"A": "1=2"}, "/w", "5:6")
    assert container.terminal and container.rootfs == str(tmp_path / "rootfs")
    [mount] = container.mounts
    assert (mount.source, mount.destination, mount.readonly) == (
        str(tmp_path / "data"), "/d", True)
    assert container.oci == {"linux": {"resources": {"memory": {"limit": 1}}}}


def _events(*specs):
    return [RecordedEvent(i, "sandbox-s", i, t, d, {}, str(i), (i + 1) * 1_000_000, 1, "")
            for i, (t, d) in enumerate(specs)]


EVENTS = _events(
    ("OperationStarted", {"op": "a", "operation": "create_sandbox", "trigger": "create",
                          "from": "new", "to": "created", "container": None}),
    ("StepStarted", {"op": "a", "step": "mount", "index": 0, "args": {}}),
    ("Mounted", {"op": "a", "step": "mount", "index": 0,
                 "acquired": [{"key": "mount:/x", "kind": "mount"}]}),
    ("StepStarted", {"op": "a", "step": "boom", "index": 1, "args": {}}),
    ("StepFailed", {"op": "a", "step": "boom", "index": 1,
                    "error": {"type": "OSError", "message": "no"}}),
    ("CompensationStarted", {"op": "a"}),
    ("StepCompensated", {"op": "a", "step": "mount", "index": 0}),
    ("OperationAborted", {"op": "a", "state": "new"}),
)


def test_timeline_marks_failures_and_compensations():
    rows = timeline(EVENTS)
    assert [r.mark for r in rows] == ["", "", "", "", "!", "<-", "<-", "!"]
    assert rows[2].outcome == "ok" and rows[2].detail == "+mount:/x"
    assert rows[2].duration == pytest.approx(0.001)          # StepStarted -> outcome
    assert rows[4].outcome == "FAILED" and rows[4].detail == "OSError: no"
    assert rows[6].outcome == "COMPENSATED"
    assert rows[7].outcome == "ABORTED" and rows[7].duration == pytest.approx(0.007)
    assert {r.operation for r in rows} == {"create_sandbox"}


def test_state_at_and_parse_at():
    assert state_at(EVENTS, ("position", 2), "s").ledger.keys() == {"mount:/x"}
    assert state_at(EVENTS, ("position", 7), "s").ledger == {}
    assert parse_at("3") == ("position", 3)
    kind, ns = parse_at("1970-01-01T00:00:00.003Z")
    assert kind == "time" and state_at(EVENTS, (kind, ns), "s").position == 2
    with pytest.raises(InvalidRequest, match="no events at or before"):
        state_at(EVENTS, ("position", -1), "s")


def test_diagram_of_an_aborted_create_takes_no_path():
    assert path_taken(EVENTS) == []
    assert "taken" not in diagram("sandbox", path_taken(EVENTS))
    with pytest.raises(InvalidRequest, match="no lifecycle machine 'vm'"):
        diagram("vm")


def test_a_refused_mount_says_root_is_needed():
    import errno

    from sandbox_fsm import OperationFailed
    from sandbox_fsm.cli import explain
    from sandbox_fsm.host import MountError
    exc = OperationFailed("create_sandbox", "mount_shared_dir",
                          MountError(errno.EPERM, "bind", "/a", "/b"), sandbox_id="s",
                          state="new")
    code, line = explain(exc)
    assert code == 1 and line.startswith("mounting needs root (CAP_SYS_ADMIN); run as root")
