"""The vocabulary (sandbox_fsm/names.py): every event type the code appends is written
once there and documented in docs/events.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sandbox_fsm import operations
from sandbox_fsm.names import event_types

ROOT = Path(__file__).resolve().parent.parent


def _documented_events() -> set[str]:
    text = (ROOT / "docs" / "events.md").read_text()
    return set(re.findall(r"^\| `([A-Za-z]+)` \|", text, flags=re.M))


def _all_operations() -> list[operations.Operation]:
    opts = {"network": True, "tracing": True}
    from sandbox_fsm.operations import container, sandbox
    from sandbox_fsm.spec import ContainerConfig, Mount
    sample = container.create(ContainerConfig(id="c", mounts=(Mount("/src", "/dst"),)))
    return [*operations.fixed_operations(), sample, sandbox.start(opts), sandbox.stop(opts)]


def test_every_step_event_is_in_the_vocabulary_and_documented():
    documented = _documented_events()
    known = event_types()
    for op in _all_operations():
        for step in op.steps:
            assert step.event in known, f"{op.name}.{step.name}: {step.event} not in names.Ev"
            assert step.event in documented, f"{step.event} is not in docs/events.md"


def test_every_event_type_the_code_may_append_is_documented():
    missing = event_types() - _documented_events()
    assert not missing, f"not in docs/events.md: {sorted(missing)}"


def test_no_event_type_literal_outside_the_vocabulary():
    """Event types are written once, in names.py: a literal elsewhere is a typo waiting."""
    types = event_types()
    offenders = []
    for path in sorted((ROOT / "sandbox_fsm").rglob("*.py")):
        if path.name == "names.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in types:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, "\n".join(offenders)
