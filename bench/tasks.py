"""`inv bench`: this checkout's benchmarks (bench/run.py), for the repository's own tasks.py.

Not part of shim.tasks (the tasks a site's own repository uses): bench/ is not shipped.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from invoke import task

RUN = Path(__file__).resolve().parent / "run.py"


@task(help={"quick": "fewer and shorter rounds (about 4 minutes; what CI prints)",
            "json": "where the raw numbers go (default bench/results.json)",
            "only": "sections to run, e.g. a,b (default a,b,c,d,e,f)",
            "build-python": "build CPython 3.11.2 once for the build-python timing (minutes)"})
def bench(c, quick=False, json="", only="", build_python=False):
    """Benchmarks side by side: the bare app, wsgi-shim, wsgi-shim 0.1.0 (needs root: sudo inv bench).

    Per request in process, start-up, throughput and latency through real Apache + Passenger,
    deploys under load, `check` and build-python times, a real Wagtail site: one table of ratios, raw numbers as JSON.
    """
    cmd = [sys.executable, str(RUN)] + (["--quick"] if quick else []) + (["--json", json] if json else []) \
        + (["--only", only] if only else []) + (["--build-python"] if build_python else [])
    c.run(shlex.join(cmd), pty=False, in_stream=False)
