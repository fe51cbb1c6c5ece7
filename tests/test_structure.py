"""The shape of the code: no import cycles, dependencies one way, small files and
functions (the vocabulary's own checks are in test_vocabulary.py).

Read from the source with `ast` (no package code runs), so a cycle hidden under
TYPE_CHECKING or inside a function counts like any other import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("eventstore", "agent_io", "sandbox_fsm")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


# -- imports ----------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of `modules` that `path` imports, anywhere in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, modules) for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}   # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _parent_edge(src: str, dst: str) -> bool:
    """A module importing its own package's `__init__` (or the reverse) is how Python
    packages are built, not a cycle between two modules of ours."""
    return src.startswith(dst + ".") or dst.startswith(src + ".")


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_a_package():
    for package in PACKAGES:
        graph = {src: {d for d in dsts if not _parent_edge(src, d)}
                 for src, dsts in import_graph(package).items()}
        cycle = _cycle(graph)
        assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_dependencies_point_one_way():
    """sandbox_fsm -> eventstore, sandbox_fsm -> agent_io -> protos; never back."""
    for package, forbidden in (("eventstore", ("sandbox_fsm", "agent_io", "protos")),
                               ("agent_io", ("sandbox_fsm", "eventstore"))):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level \
                    else []
                bad = [n for n in names if n.split(".")[0] in forbidden]
                assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


# -- sizes ------------------------------------------------------------------------------

def _source_files() -> list[Path]:
    """The product's Python files, generated code (protos/*_pb2*) excepted."""
    files = []
    for top in (*PACKAGES, "protos"):
        files += [p for p in (ROOT / top).rglob("*.py") if "_pb2" not in p.name]
    return sorted(files)


def test_no_file_over_the_line_limit():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in _source_files()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long, f"files over {MAX_FILE_LINES} lines:\n" + "\n".join(long)


def test_no_function_over_the_line_limit():
    long = []
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - start + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                f"{lines} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
