"""The package keeps its shape: imports point down the pipeline, modules stay readable
(and so do the test files: the same line cap covers ``tests/``).

Imports anywhere in a module count (also those inside functions), and importing
``genrify.x.y`` counts as importing the package ``genrify.x``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "genrify"
TESTS = Path(__file__).resolve().parent
#: The most lines a file may have, in the package and in its tests alike.
MAX_LINES = 450
#: Import layers, lowest first: a module may import its own layer or lower ones only.
LAYERS = [
    {"errors", "fileio", "config", "taxonomy"},
    {"audio"},
    {"features"},
    {"sources", "dataset"},
    {"models"},
    {"predict"},
    {"evaluate", "report", "tagging"},
    {"train"},
    {"scale", "audit"},
    {"cli", "web", "__main__"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                found.add(target)
                parts = target.split(".")
                found.update(".".join(parts[:k]) for k in range(2, len(parts))
                             if not name.startswith(".".join(parts[:k]) + "."))
    return found - {name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_architecture.py")


def test_no_import_cycles(graph):
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles


def test_imports_point_down_the_pipeline(graph):
    upward = [f"{m} -> {t}" for m, targets in graph.items() if m != "genrify"
              for t in targets if t != "genrify" and _layer(t) > _layer(m)]
    assert not upward


def test_only_the_front_doors_import_the_package_root(graph):
    """The root re-exports the public API (it imports ``predict`` lazily), so a pipeline stage
    that imported it would climb back up."""
    assert not [m for m, targets in graph.items() if "genrify" in targets and _layer(m) < len(LAYERS) - 1]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_stay_short(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80]
    assert not long


@pytest.mark.parametrize("path", sorted(TESTS.rglob("*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_test_files_stay_short(path):
    """The tests mirror the package, one file per concern, so they keep its cap too (helpers included)."""
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{lines} lines: split it by concern"
