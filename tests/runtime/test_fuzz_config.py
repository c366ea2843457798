"""Whatever config.toml holds, get_app() returns a page, never an exception (hypothesis)."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shim.runtime.config import SCHEMA
from shim.runtime import loader
from shim.runtime.loader import get_app

KNOWN = [(s, k) for s, keys in SCHEMA.items() for k in keys] + [("secret_files", "X"), ("environment", "Y")]
scalars = st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.floats(allow_nan=False),
                    st.lists(st.text(max_size=5), max_size=3))
known_tables = st.lists(st.tuples(st.sampled_from(KNOWN), scalars), max_size=12).map(
    lambda pairs: {s: {k: v for (s2, k), v in pairs if s2 == s} for (s, _), _ in pairs})
any_tables = st.dictionaries(st.text(min_size=1, max_size=12),
                             st.one_of(scalars, st.dictionaries(st.text(min_size=1, max_size=12), scalars,
                                                                max_size=4)), max_size=6)


def _serve(app_root: Path, content: bytes) -> tuple[str, list]:
    (app_root / "config.toml").write_bytes(content)
    saved = (sys.stdout, sys.stderr, list(logging.root.handlers), logging.root.level, warnings.showwarning,
             dict(os.environ), os.getcwd(), list(sys.path))
    try:
        app = get_app(app_root)
        seen = {}
        body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": None},
                   lambda status, headers, exc_info=None: seen.update(status=status, headers=headers))
        text = b"".join(body)
        # A real diagnosis, not our crash (visitors see the plain page: ask the start itself).
        assert text and b"[shim-internal]" not in text, text.decode()
        codes = [p.code for p in loader.LAST_START.problems]
        assert "shim-internal" not in codes, loader.LAST_START
        return seen["status"], seen["headers"]
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        logging.root.handlers[:] = saved[2]
        logging.root.setLevel(saved[3])
        warnings.showwarning = saved[4]
        os.environ.clear()
        os.environ.update(saved[5])
        os.chdir(saved[6])
        sys.path[:] = saved[7]


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(content=st.binary(max_size=400))
def test_arbitrary_bytes(tmp_path, content):
    status, headers = _serve(tmp_path, content)
    assert status.startswith(("500", "503")) and ("X-Wsgi-Shim", "error") in headers


@FUZZ
@given(data=st.one_of(known_tables, any_tables))
def test_arbitrary_toml(tmp_path, data):
    status, headers = _serve(tmp_path, tomli_w.dumps(data).encode())
    assert ("X-Wsgi-Shim", "error") in headers, status  # no app module exists here, so never "app"
