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



# Imported only when something is wrong (or config.toml changed): a healthy start must not pay for
# them. (traceback comes with logging, which Passenger's loader imports before the app; so wsgi-shim's
# own modules are checked for it below, by their source.)
NOT_AT_HEALTHY_START = ("traceback", "dataclasses", "inspect", "typing", "datetime", "html", "sysconfig",
                        "difflib", "argparse")
# What parsing config.toml needs; a start with an unchanged config.toml reads the parsed cache instead.
PARSING = ("tomllib",)

_MODULES_LOADED = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("_wsgi_shim_passenger_loader", sys.argv[2])
loader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loader)
loader.drop_script_dir(sys.argv[0])
loader.initialize_logging()  # Passenger's loader sets up logging before it loads the app
before = set(sys.modules)
os.environ["IN_PASSENGER"] = "1"
os.chdir(sys.argv[1])
module = loader.load_app()
body = b"".join(module.application({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *a: None))
os.write(1, json.dumps({"body": body.decode(), "new": sorted(set(sys.modules) - before)}).encode())
"""


def _top_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is imported (not inside functions nor `if TYPE_CHECKING:`)."""
    found: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module or "")
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return found


@pytest.mark.realserver
def test_a_healthy_start_imports_only_what_it_needs():
    """Started twice the way Passenger starts it, as the site's user: neither start imports what only
    failures need, and the second (config.toml unchanged) does not even parse TOML."""
    import json

    import shutil

    from tests.support.sites import BASE, VENV, make_site, run_as_site

    site = make_site("lean")
    loader = BASE / "passenger_loader.py"  # where the site's user can read it (a checkout may not be)
    shutil.copy(REPO / "shim" / "ops" / "passenger_loader.py", loader)
    loader.chmod(0o644)

    def start() -> set[str]:
        proc = run_as_site([str(VENV / "bin/python"), "-c", _MODULES_LOADED, str(site.approot), str(loader)])
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["body"] == "hello from the app"
        return set(result["new"])

    first, second = start(), start()
    assert "shim.runtime.loader" in first and "shim.runtime.loader" in second
    imported = lambda names, loaded: [n for n in names if n in loaded]  # noqa: E731
    assert imported(NOT_AT_HEALTHY_START, first - {"typing", "datetime"}) == []  # tomllib needs those two
    assert imported(PARSING, first) == ["tomllib"]  # the first start parses config.toml...
    assert imported(NOT_AT_HEALTHY_START + PARSING, second) == []  # ...the next ones read the cache
    # Nor does any wsgi-shim module of that start import one of them when it is imported.
    ours = sorted(m for m in second if m.startswith("shim."))
    assert len(ours) >= 8
    for name in ours:
        path = REPO / (name.replace(".", "/") + ".py")
        path = path if path.exists() else path.with_suffix("") / "__init__.py"
        assert sorted(set(NOT_AT_HEALTHY_START + PARSING) & _top_level_imports(path)) == [], name


def test_top_level_import_finder_sees_imports_and_skips_functions_and_type_checking(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom html import escape\nif TYPE_CHECKING:\n    import typing\n"
                      "try:\n    import traceback\nexcept ImportError:\n    pass\n"
                      "def f():\n    import difflib\n")
    assert _top_level_imports(source) == {"os", "html", "traceback"}


def test_no_function_in_shim_over_80_lines():
    """A long procedure is a list of named steps (issue 7): every function reads at once."""
    long = []
    for path in sorted(SHIM.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
