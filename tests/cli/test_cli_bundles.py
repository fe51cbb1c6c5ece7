"""Bad bundles are refused whole before the first event: exit 2, one line, nothing
written, nothing left on the host (issue #11: 4, 10, 14, 16)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

BIG = "x" * (5 * 1024 * 1024)
BAD = {
    "namespaces-string": ({"linux": {"namespaces": "pid"}}, "linux.namespaces"),
    "linux-list": ({"linux": [1]}, "linux"),
    "namespaces-ints": ({"linux": {"namespaces": [1]}}, "linux.namespaces[0]"),
    "devices-ints": ({"linux": {"devices": [1]}}, "linux.devices[0]"),
    "memory-limit-text": ({"linux": {"resources": {"memory": {"limit": "lots"}}}},
                          "linux.resources.memory.limit"),
    "oci-version-int": ({"ociVersion": 2}, "ociVersion"),
    "reserved-annotation": ({"annotations": {"io.sbx.run.owner": "1:1"}},
                            "'io.sbx.run.owner' is reserved"),
    "annotation-not-text": ({"annotations": {"a": 1}}, "annotation 'a' must be a string"),
    "nul-in-args": ({"process": {"args": ["echo", "a\0b"], "cwd": "/"}}, "NUL"),
    "nul-in-env": ({"process": {"args": ["true"], "env": ["A=x\0y"], "cwd": "/"}}, "NUL"),
    "nul-in-cwd": ({"process": {"args": ["true"], "cwd": "/tmp\0x"}}, "NUL"),
    "linux-5mb": ({"linux": {"sysctl": {"big": BIG}}}, "the agent protocol carries at most"),
}


@pytest.fixture(scope="module")
def base(module_sbx):
    module_sbx.ok("run", "--id", "base", "--", "true")
    return module_sbx


def _refused(sbx, bundle: Path, message: str) -> None:
    before = sbx.checkpoint()
    out = sbx("create", "bad", "--bundle", str(bundle))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sbx: error: ") and message in lines[0], lines
    assert sbx.checkpoint() == before
    assert os.listdir(sbx.root / "run" / "sandboxes") == []
    assert sbx("state", "bad").returncode == 4


@pytest.mark.parametrize("case", list(BAD))
def test_bad_bundle_is_refused_before_anything_is_written(base, make_bundle,
                                                          case: str) -> None:
    extra, message = BAD[case]
    bundle = make_bundle(["sleep", "30"])
    config = json.loads((bundle / "config.json").read_text())
    config.update(extra)
    (bundle / "config.json").write_text(json.dumps(config))
    _refused(base, bundle, message)


def test_huge_config_json_is_refused_unread(base, make_bundle) -> None:
    bundle = make_bundle(["true"])
    with open(bundle / "config.json", "r+") as f:
        f.truncate(100 * 1024 * 1024)
    _refused(base, bundle, "limit")


def test_a_bundle_spec_is_stored_once(base, make_bundle) -> None:
    marker = "m" * (512 * 1024)
    # a label the guest's runc does not apply (a sysctl it would, and refuse this one)
    bundle = make_bundle(["true"], linux={"mountLabel": marker})
    before = (base.root / "state" / "events" / "data.mdb").stat().st_size
    base.ok("create", "once", "--bundle", str(bundle))
    base.ok("delete", "--force", "once")
    copies = sum(json.dumps(e).count(marker) for e in base.export() if e["stream"] ==
                 "sandbox-once")
    assert copies == 1, copies
    grown = (base.root / "state" / "events" / "data.mdb").stat().st_size - before
    assert grown < 2 * len(marker)
