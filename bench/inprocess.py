"""Per request, in process: the callable each variant hands Passenger, called directly.

Each measurement is a fresh process of the site's Python, as the site's user, in the app root,
that loads passenger_wsgi.py through wsgi-shim's emulation of Passenger's loader
(shim/ops/passenger_loader.py, loaded by path: 0.1.0's venv has no `shim`) and then times
`application(environ, start_response)` with its body joined and closed, as a server does.
Rounds alternate the variants; the figure per round is the best of 7 timeit repeats.
"""

from __future__ import annotations

import json

from bench.sites import BenchSite, loader_copy
from tests.support.sites import run_as_site

SCRIPT = r"""
import importlib.util, json, os, sys, timeit
spec = importlib.util.spec_from_file_location("_wsgi_shim_passenger_loader", sys.argv[1])
loader = importlib.util.module_from_spec(spec); spec.loader.exec_module(loader)
loader.drop_script_dir(sys.argv[0])
out = os.fdopen(os.dup(1), "w")  # the shim sends stdout to the app log
app = loader.start(os.getcwd()).application
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SCRIPT_NAME": "", "QUERY_STRING": "",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
           "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http",
           "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}
def start_response(status, headers, exc_info=None):
    return None
def call():
    body = app(environ, start_response)
    data = b"".join(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return data
assert call() == sys.argv[2].encode(), call()
n = int(sys.argv[3])
best = min(timeit.repeat(call, number=n, repeat=7)) / n
out.write(json.dumps({"ns_per_call": best * 1e9, "callable": type(app).__name__}))
out.flush()
"""


def one(site: BenchSite, body: str, calls: int) -> dict:
    proc = run_as_site([str(site.python), "-c", SCRIPT, str(loader_copy()), body, str(calls)], cwd=site.approot,
                       timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"in-process run of {site.name} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout)


def measure(sites: dict[str, BenchSite], body: str, rounds: int, calls: int) -> dict[str, list[float]]:
    from bench.stats import rotations

    out: dict[str, list[float]] = {name: [] for name in sites}
    kinds: dict[str, str] = {}
    for order in rotations(list(sites), rounds):
        for name in order:
            result = one(sites[name], body, calls)
            out[name].append(result["ns_per_call"])
            kinds[name] = result["callable"]
    return {"ns_per_call": out, "callable": kinds, "calls": calls}

