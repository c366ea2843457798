"""One emulation of Passenger's loader (shim/ops/passenger_loader.py), shared by the probe, the
preview, the test harness and the benchmarks: none of them loads passenger_wsgi.py on its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOADER = REPO / "shim" / "ops" / "passenger_loader.py"
USERS = [REPO / "shim/ops/probe.py", REPO / "shim/ops/preview.py", REPO / "tests/support/passenger_harness.py",
         REPO / "bench/inprocess.py"]  # bench/startup.py runs Passenger's own wsgi-loader.py (bench/worker.py)
# What loading the startup file the way Passenger does looks like in code.
LOADING = re.compile(r"""spec_from_file_location\(\s*["']passenger_wsgi|load_source\(\s*["']passenger_wsgi|"""
                     r"""sys\.path\.insert\(0, os\.getcwd\(\)\)""")


# Not emulations: the imp compatibility module is what Passenger's own loader (before 6.0.19) calls,
# and its test calls it as that loader does.
NOT_EMULATIONS = {REPO / "shim/ops/scripts/imp.py", REPO / "tests/runtime/test_python_passenger.py"}


def test_nothing_else_emulates_passengers_loader():
    others = [p.relative_to(REPO) for top in ("shim", "tests", "bench") for p in (REPO / top).rglob("*.py")
              if p != LOADER and p not in NOT_EMULATIONS and LOADING.search(p.read_text())]
    assert others == [], f"load passenger_wsgi.py through shim/ops/passenger_loader.py instead: {others}"
    for user in USERS:
        assert "passenger_loader" in user.read_text(), user


def test_the_emulation_runs_by_path_in_a_python_without_shim(tmp_path):
    """Standard library only: the site's venv may lack wsgi-shim."""
    (tmp_path / "passenger_wsgi.py").write_text(
        "import os, sys, logging, warnings\n"
        "warnings.warn('captured')\n"
        "application = (os.environ['IN_PASSENGER'], os.getcwd(), sys.path[0], __name__,\n"
        "               logging.getLogger().level, 'shim' in sys.modules)\n")
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('loader', sys.argv[1])\n"
            "loader = importlib.util.module_from_spec(spec); spec.loader.exec_module(loader)\n"
            "loader.drop_script_dir()\n"
            "print(repr(loader.start(sys.argv[2]).application))\n")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(LOADER), str(tmp_path)], capture_output=True,
                         text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert eval(out.stdout) == ("1", str(tmp_path), str(tmp_path), "passenger_wsgi", 30, False)
    assert "captured" in out.stderr and "[ pid=" in out.stderr  # Passenger's logging format
