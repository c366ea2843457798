"""Passenger before 6.0.19 loads apps with `imp.load_source`, and Python 3.12 removed `imp`:
what `check` reports for each combination, and wsgi-shim's compatibility module itself.

The whole story through real Apache + Passenger 6.0.17 and a Python 3.13 built by
`inv build-python` is tests/e2e/test_imp_compat.py."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from shim.ops import buildpython
from shim.ops.checking import passenger_version, python_passenger_problems

NO_IMP = {"usable": False, "error": "ModuleNotFoundError: No module named 'imp'"}
OURS = {"usable": True, "file": "/site/python-3.13.5/lib/python3.13/imp.py", "wsgi_shim": True}


def codes(python, passenger, imp=None):
    return [(p.code, p.severity)
            for p in python_passenger_problems(python, passenger, "/site/venv/bin/python", imp)]


def test_the_combinations():
    assert codes((3, 11, 2), (6, 0, 17)) == []
    assert codes((3, 12, 1), (6, 0, 17), NO_IMP) == [("imp-missing", "error")]
    assert codes((3, 13, 5), (6, 0, 18), NO_IMP) == [("imp-missing", "error")]
    assert codes((3, 13, 0), (6, 0, 19), NO_IMP) == []
    assert codes((3, 12, 0), None, NO_IMP) == [("imp-missing-passenger-unknown", "warning")]
    assert codes((3, 11, 9), None) == []
    # With the compatibility module (or any imp that has load_source) Passenger's version
    # does not matter: nothing to report, not even a warning.
    assert codes((3, 13, 5), (6, 0, 17), OURS) == []
    assert codes((3, 13, 5), None, OURS) == []


def test_the_messages_name_the_cause_and_the_command_that_fixes_it():
    [problem] = python_passenger_problems((3, 13, 5), (6, 0, 17), "/site/venv/bin/python", NO_IMP)
    assert "Python is 3.13.5 and has no `imp` module" in problem.what
    assert "Passenger 6.0.17 loads apps with `imp.load_source`" in problem.what
    assert "generic error page" in problem.what
    assert "`inv venv`" in problem.fix and "inv build-python" in problem.fix
    assert "Passenger 6.0.19 or newer" in problem.fix and "docs/building-python.md" in problem.fix
    assert problem.where == "/site/venv/bin/python"
    foreign = {"usable": False, "file": "/site/venv/lib/python3.13/site-packages/imp.py"}
    [problem] = python_passenger_problems((3, 13, 5), (6, 0, 17), "x", foreign)
    assert "an `imp` module without load_source (/site/venv/lib/python3.13/site-packages/imp.py)" \
        in problem.what
    assert problem.fix.startswith("Move /site/venv/lib/python3.13/site-packages/imp.py away")
    broken = {"usable": False, "error": "SyntaxError: invalid syntax (imp.py, line 3)"}
    [problem] = python_passenger_problems((3, 12, 1), None, "x", broken)
    assert "cannot import its `imp` module (SyntaxError: invalid syntax (imp.py, line 3))" in problem.what


@pytest.mark.skipif(shutil.which("passenger-config") is None, reason="Passenger is not installed here")
def test_reads_the_installed_passenger():
    version = passenger_version()
    assert version is not None and version >= (6, 0, 0)


# --- the compatibility module (shim/ops/scripts/imp.py) ------------------------------------


@pytest.fixture
def compat():
    """The module as a Python 3.12+ would import it (here under another name: 3.11 has imp)."""
    path = Path(buildpython.__file__).parent / "scripts" / "imp.py"
    spec = importlib.util.spec_from_file_location("wsgi_shim_imp_compat", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_source_loads_the_startup_file_as_passengers_loader_asks(compat, tmp_path):
    startup = tmp_path / "passenger_wsgi.py"
    startup.write_text("import sys\napplication = 'the app'\nname_seen = __name__\nfile_seen = __file__\n")
    try:
        module = compat.load_source("passenger_wsgi", str(startup))
        assert sys.modules["passenger_wsgi"] is module
        assert (module.application, module.name_seen, module.file_seen) == (
            "the app", "passenger_wsgi", str(startup))
        # Loaded again into the module already there, as imp did (Passenger loads once, a
        # reload would do this).
        startup.write_text("application = 'changed'\n")
        assert compat.load_source("passenger_wsgi", str(startup)) is module
        assert module.application == "changed"
    finally:
        sys.modules.pop("passenger_wsgi", None)


def test_any_suffix_and_a_failed_load_leaves_no_module_behind(compat, tmp_path):
    # PassengerStartupFile may name any file; importlib alone would not load a .wsgi file.
    startup = tmp_path / "site.wsgi"
    startup.write_text("application = 42\n")
    try:
        assert compat.load_source("wsgi_shim_t_suffix", str(startup)).application == 42
    finally:
        sys.modules.pop("wsgi_shim_t_suffix", None)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('broken at import')\n")
    with pytest.raises(RuntimeError, match="broken at import"):
        compat.load_source("wsgi_shim_t_broken", str(broken))
    assert "wsgi_shim_t_broken" not in sys.modules
    with pytest.raises(FileNotFoundError):
        compat.load_source("wsgi_shim_t_missing", str(tmp_path / "nothing.py"))
    assert "wsgi_shim_t_missing" not in sys.modules


def test_the_rest_of_imp_says_what_this_module_is(compat):
    assert compat.WSGI_SHIM_IMP_COMPAT == 1
    with pytest.raises(AttributeError, match="wsgi-shim's compatibility module.*only imp.load_source"):
        compat.find_module("os")
    assert not hasattr(compat, "reload")
