"""What the request-time diagnostics cost a healthy site, per request.

    python bench/request_overhead.py            # about 30-60 s
    python bench/request_overhead.py --quick    # a few seconds, noisier

A trivial WSGI app is served bare and wrapped by shim.diagnostics (catch_errors on, a real app
log open, stdout/stderr/logging captured, exactly as shim.loader sets it up), each by its own
waitress server process on loopback. One keep-alive HTTP client sends the same number of
requests to each, in short alternating rounds so drift in machine load hits both alike; the
median of the paired round ratios is the headline figure, and each server's own CPU time per
request (from /proc) is shown beside it because it is barely moved by other load. Then the
in-process cost of one call is measured with timeit (no network), for a list body and for a
generator body (which passes through the middleware's thin generator).

Target: wrapped / bare <= 1.05 over HTTP (issue 4).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BODY = b"Hello, world!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def trivial_app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


def generator_app(environ, start_response):
    start_response("200 OK", HEADERS)
    yield BODY


def wrapped(app, logdir: Path):
    """The app as shim.loader hands it to Passenger with [logging] defaults."""
    from shim.runtime import applog, diagnostics
    from shim.runtime.config import LoggingConfig

    cfg = LoggingConfig(path=logdir / "app.log", starts_path=logdir / "starts.jsonl")
    log, problems = applog.setup(cfg, ["a-secret-file-value"])
    assert log is not None, problems
    return diagnostics.wrap(app, cfg, log, ["a-secret-file-value"])


# -- server side ----------------------------------------------------------------------------

def serve(variant: str) -> None:
    import logging

    from waitress.server import create_server

    # waitress warns "Task queue depth is 1" on busy single-thread servers; in the wrapped
    # server that would become app log writes the bare one does not pay for.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    logdir = Path(tempfile.mkdtemp(prefix="wsgi-shim-bench-"))
    app = {"bare": trivial_app, "wrapped": None}.get(variant)
    if variant == "wrapped":
        app = wrapped(trivial_app, logdir)
    server = create_server(app, host="127.0.0.1", port=0, threads=1, ident="bench")
    sys.__stdout__.write(f"{server.effective_port}\n")
    sys.__stdout__.flush()
    server.run()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(variant: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", variant],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


# -- client side ----------------------------------------------------------------------------

def http_round(conn: http.client.HTTPConnection, n: int) -> float:
    """Seconds per request over n keep-alive requests."""
    start = time.perf_counter()
    for _ in range(n):
        conn.request("GET", "/")
        r = conn.getresponse()
        if r.read() != BODY or r.status != 200:
            raise SystemExit(f"unexpected response {r.status}")
    return (time.perf_counter() - start) / n


def measure_http(requests: int, rounds: int) -> dict[str, list[float]]:
    servers = {v: start_server(v) for v in ("bare", "wrapped")}
    try:
        conns = {v: http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                 for v, (_, port) in servers.items()}
        for conn in conns.values():  # warm up: connection, imports, first log writes
            http_round(conn, max(50, requests // 10))
        times: dict[str, list[float]] = {"bare": [], "wrapped": []}
        cpu_before = {v: cpu_seconds(proc.pid) for v, (proc, _) in servers.items()}
        for i in range(rounds):
            order = ("bare", "wrapped") if i % 2 == 0 else ("wrapped", "bare")
            for v in order:
                times[v].append(http_round(conns[v], requests))
        spent = {v: cpu_seconds(proc.pid) - cpu_before[v] for v, (proc, _) in servers.items()}
        if all(spent.values()):
            total = rounds * requests
            times["cpu"] = [spent["bare"] / total, spent["wrapped"] / total]
        for conn in conns.values():
            conn.close()
        return times
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)


def measure_in_process(number: int) -> dict[str, float]:
    """Seconds per call (app call + consuming the body), best of 5."""
    logdir = Path(tempfile.mkdtemp(prefix="wsgi-shim-bench-"))
    apps = {"bare list body": trivial_app,
            "wrapped list body": wrapped(trivial_app, logdir),
            "bare generator body": generator_app,
            "wrapped generator body": wrapped(generator_app, logdir)}
    from shim.runtime import applog

    applog.release()  # print the results to the terminal, not to the bench's app log
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.1"}

    def start_response(status, headers, exc_info=None):
        return None

    out = {}
    for name, app in apps.items():
        def one(app=app):
            for _chunk in app(environ, start_response):
                pass
        out[name] = min(timeit.repeat(one, number=number, repeat=5)) / number
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=500, help="requests per round (default 500)")
    p.add_argument("--rounds", type=int, default=40, help="rounds per variant (default 40)")
    p.add_argument("--quick", action="store_true", help="500 requests x 8 rounds")
    p.add_argument("--serve", choices=("bare", "wrapped"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a.serve)
        return 0
    if a.quick:
        a.requests, a.rounds = 500, 8
    print(f"wsgi-shim request overhead: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"waitress (1 thread) on 127.0.0.1, keep-alive client, "
          f"{a.rounds} rounds x {a.requests} requests per variant")
    started = time.monotonic()
    times = measure_http(a.requests, a.rounds)
    bare, wrap = statistics.median(times["bare"]), statistics.median(times["wrapped"])
    print()
    print("Over HTTP (median round, per request)")
    print(f"  {'bare app':<32}{bare * 1e6:10.1f} us")
    print(f"  {'wrapped (diagnostics on)':<32}{wrap * 1e6:10.1f} us")
    # Each wrapped round ran right next to a bare one: the median of those paired ratios is the
    # wall-clock figure least moved by other load on the machine.
    ratio = statistics.median(w / b for w, b in zip(times["wrapped"], times["bare"], strict=True))
    verdict = "OK" if ratio <= 1.05 else "ABOVE TARGET"
    print(f"  {'ratio wrapped / bare (paired)':<32}{ratio:10.3f}    (target <= 1.05: {verdict})")
    print(f"  {'ratio of medians':<32}{wrap / bare:10.3f}")
    print(f"  {'ratio of best rounds':<32}{min(times['wrapped']) / min(times['bare']):10.3f}")
    spread = {v: (min(t) * 1e6, max(t) * 1e6) for v, t in times.items() if v in ("bare", "wrapped")}
    print(f"  rounds spread: bare {spread['bare'][0]:.1f}-{spread['bare'][1]:.1f} us, "
          f"wrapped {spread['wrapped'][0]:.1f}-{spread['wrapped'][1]:.1f} us")
    cpu = times.get("cpu")
    if cpu:
        b, w = cpu
        print("Server process CPU time per request (all rounds; barely moved by other load)")
        print(f"  {'bare app':<32}{b * 1e6:10.1f} us")
        print(f"  {'wrapped (diagnostics on)':<32}{w * 1e6:10.1f} us")
        print(f"  {'ratio wrapped / bare':<32}{w / b:10.3f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > (os.cpu_count() or 1):
        print(f"  note: load average {load:.1f} on {os.cpu_count()} CPUs while measuring; "
              "wall-clock figures are noisy, trust the CPU-time ratio")

    calls = measure_in_process(20000 if a.quick else 100000)
    print()
    print("In process (one call + consuming the body, best of 5)")
    for body in ("list body", "generator body"):
        b, w = calls[f"bare {body}"], calls[f"wrapped {body}"]
        print(f"  {body:<16} bare {b * 1e9:8.0f} ns   wrapped {w * 1e9:8.0f} ns   "
              f"added {(w - b) * 1e9:6.0f} ns   ratio {w / b:5.2f}")
    print()
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
