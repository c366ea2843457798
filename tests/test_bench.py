"""The benchmark command runs: `inv bench --quick` prints its one table and writes the raw numbers.

No timing is asserted (speed is read from the table, never tested); what is checked is that every
section measured what it says: the app answered (not an error page), each variant ran, and the
variants are what they claim to be (ours wraps the app, ours with diagnostics off does not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"bare", "ours", "v010"}


@pytest.mark.realserver
def test_inv_bench_quick_prints_the_table_and_writes_the_raw_numbers(tmp_path):
    from tests.support.apache import apache_available

    reason = apache_available()
    if reason is not None and os.geteuid() != 0:
        pytest.skip(f"real Apache + Passenger: {reason}")
    assert reason is None, f"real Apache + Passenger unavailable although running as root: {reason}"
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "invoke", "bench", "--quick", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout
    print(table)  # CI shows it (pytest -s) and so does a failing run
    assert "ratio to bare" in table and "Passenger 6." in table
    for row in ("a. per call, in process: ours (defaults) (CatchErrors)",
                "a. per call, in process: ours, diagnostics off (function)",
                "a. per request, one real Passenger app process", "b. start-up, loading passenger_wsgi.py",
                "a. failed request, masking: 3600-line PEM bundle as a secret file",
                "b. start-up added: ours / 0.1.0's", "c. Passenger, req/s: wsgi-shim 0.1.0",
                "c. Passenger, latency p50 / p99", "d. restart.txt touched to a new process serving",
                "e. `wsgi-shim check SITE` wall time",
                "f. Wagtail, compile | --no-compile: first request after the restart",
                "f. Wagtail, compile | --no-compile: wsgi-shim's share of a start"):
        assert row in table, row

    data = json.loads(out.read_text())
    assert set(data["per_request"]["ns_per_call"]) == VARIANTS | {"ours-off"}
    assert data["per_request"]["callable"] == {"bare": "function", "ours-off": "function",
                                               "ours": "CatchErrors", "v010": "function"}
    assert all(len(v) >= 2 for v in data["start_up"]["load_ms"].values())
    runs = data["passenger"]["runs"]
    assert set(runs) == VARIANTS
    for name, rs in runs.items():
        assert rs and all(r["requests"] > 0 and r["non_2xx"] == 0 and r["processes"] >= 1 for r in rs), name
    assert set(data["per_request_worker"]["cpu_us_per_request"]) == VARIANTS
    assert len(data["check"]["ms"]["ours"]) >= 2
    for name, rs in data["restarts"].items():  # a new process did serve, and nobody got an error
        assert rs and all(r["restart_s"] is not None and r["failed"] == 0 for r in rs), (name, rs)
    if "runs" in data["deploys"]:  # bench/deploy_latency.py (the deploy issue's) is in the checkout
        deploys = data["deploys"]["runs"]
        assert {r["variant"] for r in deploys} == {"deploy", "deploy --maint", "deploy, fails 1st request",
                                                   "deploy, fails in production"}
        # A release that fails its first request: refused before the switch, no visitor got a 5xx.
        failing = [r for r in deploys if r["variant"] == "deploy, fails 1st request"]
        assert all(r["visitor_5xx"] == 0 and not r["went_live"] for r in failing), failing
        assert "d. `wsgi-shim deploy` of a release that fails its first request" in table
        # One only the visitors' requests show: they did reach it, and it was rolled back.
        production = [r for r in deploys if r["variant"] == "deploy, fails in production"]
        assert all(r["visitor_5xx"] > 0 and not r["went_live"] for r in production), production
        assert "d. `wsgi-shim deploy` of a release only visitors' requests fail" in table
    real = data["real_site"]["runs"]  # the Wagtail site: every first request came from a new process
    assert {r["variant"] for r in real["first_request"]} == {"compile", "no-compile"}
    assert all(r["failed"] == 0 and r["requests"] > 0 for r in real["under_load"]), real["under_load"]
    assert len(real["start_load_ms"]["ours"]) >= 2 and len(real["start_load_ms"]["bare"]) >= 2
