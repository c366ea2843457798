"""The layers: the runtime (all get_app() may import) stays standard library only and never
reaches the operator side, and no module of shim/ takes part in an import cycle, counting
imports inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIM = REPO / "shim"
# Never in a healthy app process: the operator side and what only it needs.
FORBIDDEN_AT_START = ("shim.ops", "shim.cli", "shim.tasks", "argparse", "waitress", "tomli_w", "invoke", "fabric")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (top level or inside functions)."""
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SHIM.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target in _imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # Importing a parent package is no edge: its __init__ ran before this module anyway.
            if target and target != name and not name.startswith(target + "."):
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_shim():
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", sorted((SHIM / "runtime").rglob("*.py")), ids=lambda p: p.name)
def test_runtime_imports_only_stdlib_and_runtime(path):
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "shim":
            assert name == "shim" or name.startswith("shim.runtime") or name == "shim.__version__", \
                f"{path.name} imports {name}: the runtime must never import the operator side"
            continue
        assert top in sys.stdlib_module_names or top == "__future__", \
            f"{path.name} imports {name}, which is not in the standard library"


@pytest.mark.realserver
def test_healthy_start_imports_no_operator_module():
    """A healthy site's passenger_wsgi.py, loaded as Passenger loads it, as the site's user."""
    from tests.support.sites import load_like_passenger, make_site

    site = make_site("layers")
    result = load_like_passenger(site)
    assert result.response.code == 200 and result.response.body == "hello from the app"
    loaded = result.raw["modules"]
    assert "shim.runtime.loader" in loaded  # it really went through the shim
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_AT_START)]
    assert bad == []
