"""The README's troubleshooting table lists every problem code wsgi-shim can report."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def problem_codes() -> set[str]:
    """First string argument of every Problem(...), _problem(...) and add(...) call in shim/."""
    codes = set()
    for path in (REPO / "shim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0]
            options = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
            for option in options:
                if name in ("Problem", "_problem", "add") and isinstance(option, ast.Constant) \
                        and isinstance(option.value, str) \
                        and re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", option.value):
                    codes.add(option.value)
    return codes


def test_the_scan_finds_codes():
    assert {"config-syntax", "app-exception", "venv-mismatch", "secret-exposed"} <= problem_codes()


def test_every_problem_code_is_in_the_troubleshooting_table():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Troubleshooting", 1)[1]
    missing = sorted(c for c in problem_codes() if f"`{c}`" not in table)
    assert not missing, f"add these codes to README's troubleshooting table: {missing}"
