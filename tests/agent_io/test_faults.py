"""Fault plan loading, validation and per-rpc counting (no server needed)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from agent_io.faults import ENV_VAR, FaultPlan


def test_empty_plan_without_path_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    plan = FaultPlan.load()
    assert not plan and plan.next_fault("Check") is None


def test_load_from_path_env_path_and_inline_env(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rules = [{"rpc": "CreateContainer", "nth": 2, "action": "error", "code": "INTERNAL"}]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(rules))
    monkeypatch.setenv(ENV_VAR, json.dumps([{"rpc": "Check", "action": "exit"}]))
    assert FaultPlan.load(path).rules[0].rpc == "CreateContainer"  # explicit path wins
    assert FaultPlan.load().rules[0].action == "exit"  # inline JSON
    monkeypatch.setenv(ENV_VAR, str(path))
    assert FaultPlan.load().rules[0].nth == 2  # a path in the variable


def test_unreadable_or_malformed_plans_name_the_source(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="missing.json"):
        FaultPlan.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        FaultPlan.load(bad)
    bad.write_text('{"rpc": "Check"}')
    with pytest.raises(ValueError, match="bad.json must be a JSON list"):
        FaultPlan.load(bad)
    monkeypatch.setenv(ENV_VAR, '[{"rpc": "Check", "action": "boom"}]')
    with pytest.raises(ValueError, match=rf"\${ENV_VAR}.*rule #0 field 'action'"):
        FaultPlan.load()


@pytest.mark.parametrize("rule, field", [
    ({"rpc": "Check", "action": "explode"}, "action"),
    ({"rpc": "Check", "action": "error", "code": "NOPE"}, "code"),
    ({"rpc": "Check", "action": "error", "code": "OK"}, "code"),
    ({"rpc": "Check", "action": "error"}, "code"),
    ({"rpc": "Check", "action": "exit", "code": "INTERNAL"}, "code"),
    ({"rpc": "Check", "nth": 0, "action": "exit"}, "nth"),
    ({"rpc": "Check", "nth": -3, "action": "exit"}, "nth"),
    ({"rpc": "Check", "nth": "2", "action": "exit"}, "nth"),
    ({"rpc": "Check", "nth": True, "action": "exit"}, "nth"),
    ({"rpc": "grpc.AgentService/Check", "action": "exit"}, "rpc"),
    ({"action": "exit"}, "rpc"),
    ({"rpc": "Check", "action": "delay"}, "seconds"),
    ({"rpc": "Check", "action": "delay", "seconds": -1}, "seconds"),
    ({"rpc": "Check", "action": "exit", "when": 1}, "when"),
])
def test_invalid_rules_name_index_and_field(rule: dict, field: str) -> None:
    ok = {"rpc": "Version", "action": "exit"}
    with pytest.raises(ValueError, match=rf"rule #1 field '{field}'"):
        FaultPlan.from_rules([ok, rule])


def test_non_object_rule_and_non_list_plan() -> None:
    with pytest.raises(ValueError, match="rule #0"):
        FaultPlan.from_rules(["Check"])
    with pytest.raises(ValueError, match="list of rules"):
        FaultPlan.from_rules({"rpc": "Check"})


def test_nth_is_per_rpc_and_first_matching_rule_wins() -> None:
    plan = FaultPlan.from_rules([
        {"rpc": "StartContainer", "nth": 2, "action": "error", "code": "ABORTED"},
        {"rpc": "StartContainer", "nth": "every", "action": "delay", "seconds": 0},
        {"rpc": "CreateContainer", "nth": 1, "action": "hang"},
    ])
    fired = [plan.next_fault("StartContainer") for _ in range(3)]
    assert [f.rule.index for f in fired] == [1, 0, 1]
    assert [f.call for f in fired] == [1, 2, 3]
    assert plan.next_fault("CreateContainer").rule.action == "hang"
    assert plan.next_fault("CreateContainer") is None
    assert plan.next_fault("Check") is None  # rpcs without rules are not even counted
    assert (plan.calls("StartContainer"), plan.calls("Check")) == (3, 0)


def test_counters_are_thread_safe() -> None:
    plan = FaultPlan.from_rules([{"rpc": "Check", "nth": 500, "action": "exit"}])
    hits: list = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(250):
            fault = plan.next_fault("Check")
            if fault is not None:
                with lock:
                    hits.append(fault.call)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert plan.calls("Check") == 2000 and hits == [500]
