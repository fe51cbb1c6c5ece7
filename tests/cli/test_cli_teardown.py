"""A hung or failing guest cannot keep a sandbox from being stopped: teardown records the
failed guest call and goes on to end the proxy and the VM (issue #11: 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HANG = [{"rpc": "DestroySandbox", "nth": "every", "action": "hang"}]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sbx.toml"
    path.write_text('[agent]\ntrace = true\ntrace_mode = "dynamic"\n'
                    '[agent.timeouts]\ndefault = 3.0\n')
    return path


def _create(sbx, config: Path, make_bundle, faults: list[dict]) -> None:
    out = sbx("--config", str(config), "create", "h", "--bundle",
              str(make_bundle(["sleep", "300"])), env={"SBX_AGENT_FAULTS": json.dumps(faults)})
    assert out.returncode == 0, out.stderr


def _outcome(sbx, event: str) -> dict:
    return [e["data"] for e in sbx.export() if e["type"] == event][-1]


@pytest.mark.parametrize(("faults", "event"), [
    (HANG, "GuestSandboxDestroyed"),
    ([{"rpc": "DestroySandbox", "nth": "every", "action": "error", "code": "INTERNAL"}],
     "GuestSandboxDestroyed"),
    ([{"rpc": "StopTracing", "nth": "every", "action": "error", "code": "INTERNAL"}],
     "TracingStopped"),
    ([{"rpc": "StopTracing", "nth": "every", "action": "hang"}], "TracingStopped"),
], ids=["destroy-hangs", "destroy-fails", "stop-tracing-fails", "stop-tracing-hangs"])
def test_delete_force_gets_past_a_failing_guest(sbx, config, make_bundle, faults,
                                                event) -> None:
    _create(sbx, config, make_bundle, faults)
    out = sbx("--config", str(config), "delete", "--force", "h")
    assert out.returncode == 0, out.stderr
    assert sbx("state", "h").returncode == 4
    assert faults[0]["rpc"] in _outcome(sbx, event)["guest_error"]
    assert _outcome(sbx, "VMStopped")["released"] == ["process:guest"]


def test_a_crash_in_a_hung_teardown_is_not_waited_for_again(sbx, config, make_bundle) -> None:
    _create(sbx, config, make_bundle, HANG)
    crashed = sbx("--config", str(config), "delete", "--force", "h",
                  env={"SBX_CRASH_AT": "destroy_sandbox_in_guest:before"})
    assert crashed.returncode == -9
    out = sbx("--config", str(config), "recover")
    assert out.returncode == 0, out.stderr
    assert "skipped" in _outcome(sbx, "GuestSandboxDestroyed")
    assert json.loads(sbx.ok("list", "--json").stdout)[0]["state"] == "stopped"
    sbx.ok("--config", str(config), "delete", "h")
