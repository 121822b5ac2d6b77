"""The house rules of DESIGN.md that code can check: no import cycles (lazy imports
included), the faces (cli/, web/) reach the database only through `Queue`, and modules
small enough to read in one sitting."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

import queuectl

PACKAGE = Path(queuectl.__file__).parent
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import in the module, at any depth (lazy ones
    inside functions included), relative ones resolved. `from a import b` names a.b when
    that is a module, else a."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                # a package's own name is its first level; a module's is its parent's
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.append((child if child in MODULES else target, node.lineno))
    return found


def _graph() -> dict[str, dict[str, int]]:
    """queuectl module -> {queuectl module it imports: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, {})
        for target, line in _imports(name, path):
            if target in MODULES and target != name:
                edges.setdefault(target, line)
    return graph


def _find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first, colouring)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path = [start], {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
            elif target in on_path:
                return [*path[path.index(target) :], target]
            elif target not in done:
                path.append(target)
                on_path.add(target)
                stack.append(iter(sorted(graph[target])))
    return None


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) is None
    assert _find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"b": 1}}) == ["b", "c", "b"]


def test_relative_imports_resolve():
    edges = _graph()
    assert "queuectl.errors" in edges["queuectl.queue"]  # from .errors import ...
    assert "queuectl.queue" in edges["queuectl"]  # lazy, in __getattr__
    assert "queuectl.web.app" in edges["queuectl.cli.dashboard_cmd"]  # lazy, two levels up


def test_no_import_cycles():
    graph = _graph()
    cycle = _find_cycle(graph)
    if cycle:
        steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in itertools.pairwise(cycle)]
        pytest.fail("import cycle: " + "; ".join(steps))


FACES = [name for name in MODULES if name.startswith(("queuectl.cli", "queuectl.web"))]


@pytest.mark.parametrize("name", FACES)
def test_faces_use_the_queue_not_the_store(name):
    path = MODULES[name]
    wrong = [
        f"line {line}: imports {target}"
        for target, line in _imports(name, path)
        if target == "queuectl.store" or target.startswith("queuectl.store.")
    ]
    wrong += [
        f"line {node.lineno}: .store"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "store"
    ]
    assert not wrong, f"{name} reaches the store past Queue: " + ", ".join(dict.fromkeys(wrong))


def test_modules_are_small():
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
