"""Throughput through real Apache 2.4 + mod_passenger: bare app, wsgi-shim (ours), wsgi-shim 0.1.0.

    sudo python3 bench/passenger.py [--quick] [--seconds 5] [--rounds 8] [--only bare,ours] [--shared-pool]

Each site of bench/sites.py gets a private Apache of its own (tests/support/apache.py) on a
loopback port, with Passenger's defaults (pool of 6, direct spawning, 10 s stat throttle);
--shared-pool puts them all in one Apache, where the warm-up order decides (see start_apaches).
wrk (keep-alive, 8 connections, bounded in time) loads one site at a time, in rounds that rotate
the order, after a warm-up that lets Passenger grow each pool. Per run: requests per second,
p50/p99 latency, non-2xx responses, and what the site's app processes looked like at the end
(how many, started during the run, RSS, threads, open files).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import sites as bench_sites  # noqa: E402
from bench.stats import paired_ratios, ratio_text, rotations, summary  # noqa: E402
from tests.support.accounts import PROJECT_GROUP, SITE_USER  # noqa: E402
from tests.support.apache import ApacheServer, http_get  # noqa: E402

CONNECTIONS = 8
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def start_apaches(sites: dict[str, bench_sites.BenchSite], servers: dict[str, ApacheServer],
                  shared: bool = False) -> dict[str, str]:
    """One Apache + Passenger per site, so each has Passenger's pool of 6 to itself.

    In one shared pool (shared=True, to see it) the site loaded first takes 5 of the 6 processes
    and keeps them (Passenger queues another app's requests on its one process rather than
    stopping a busy app's idle ones): the order of the warm-up, not the site, then decides the
    ratio (seen here: 0.70 one way, 1.40 the other)."""
    urls = {}
    groups = [("shared", list(sites))] if shared else [(name, [name]) for name in sites]
    for label, names in groups:
        workdir = bench_sites.BASE / f"apache-{label}"
        server = ApacheServer(workdir, stat_throttle_rate=None)  # Passenger's production default
        server.stop()  # one left by an interrupted run
        shutil.rmtree(workdir, ignore_errors=True)
        for name in names:
            site = sites[name]
            server.add_site(name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                            python=site.python)
            servers[name] = server
        server.start()
        urls.update({name: server.site_url(name) for name in names})
    return urls


def check_serves_the_app(name: str, url: str) -> None:
    """Measure the app, not an error or maintenance page."""
    r = http_get(url + "/", timeout=60)
    if r.status != 200 or r.body != bench_sites.BODY:
        raise RuntimeError(f"{name} at {url} answers {r.status} {r.headers} {r.body[:500]!r}; not the app")


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def wrk(url: str, seconds: float, connections: int = CONNECTIONS) -> dict[str, float]:
    """One wrk run against url (loopback only, bounded in time)."""
    assert url.startswith("http://127.0.0.1:"), url
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
                          url + "/"], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1)),
              "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
              "errors": sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))}
    for pct in ("50", "99"):
        result[f"p{pct}_ms"] = _ms(re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M).group(1))
    return result


def app_processes(approot: Path) -> list[dict]:
    """The site's Passenger app processes (cwd inside its app root), with what each holds."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            if not cwd.startswith(str(approot)):
                continue
            status = Path(f"/proc/{entry}/status").read_text()
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            fds = len(os.listdir(f"/proc/{entry}/fd"))
        except OSError:
            continue
        field = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        found.append({"pid": int(entry), "rss_kb": int(field["VmRSS"].split()[0]),
                      "threads": int(field["Threads"]), "fds": fds,
                      "cpu_s": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"),
                      "start_ticks": int(stat[19])})
    return found


def cpu_seconds(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return total


def server_pids(server: ApacheServer) -> set[int]:
    """Apache's processes and Passenger's watchdog and core (not the apps)."""
    return server._conf_pids() | server._passenger_pids()


def run_rounds(servers: dict[str, ApacheServer], urls: dict[str, str], approots: dict[str, Path], rounds: int,
               seconds: float, warmup: float) -> dict[str, list[dict]]:
    names = list(urls)
    for name in names:  # let Passenger grow each pool before anything counts
        wrk(urls[name], warmup)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for order in rotations(names, rounds):
        for name in order:
            before = {p["pid"]: p for p in app_processes(approots[name])}
            pids = server_pids(servers[name])
            server_cpu = cpu_seconds(pids)
            result = wrk(urls[name], seconds)
            result["server_cpu_s"] = cpu_seconds(pids) - server_cpu
            after = app_processes(approots[name])
            result["processes"] = len(after)
            result["spawned"] = sum(p["pid"] not in before for p in after)
            result["app_cpu_s"] = sum(p["cpu_s"] - before.get(p["pid"], {"cpu_s": 0.0})["cpu_s"] for p in after)
            result["rss_kb"] = sorted(p["rss_kb"] for p in after)
            result["threads"] = sorted(p["threads"] for p in after)
            result["fds"] = sorted(p["fds"] for p in after)
            runs[name].append(result)
    return runs


def measure(rounds: int = 8, seconds: float = 5, warmup: float = 3, only: tuple[str, ...] = (),
            made: dict[str, bench_sites.BenchSite] | None = None, shared: bool = False) -> dict:
    made = made or bench_sites.make_all()
    sites = {n: made[n] for n in (only or tuple(made))}  # in this order: warm-up and first round
    servers: dict[str, ApacheServer] = {}
    try:
        urls = start_apaches(sites, servers, shared)  # fills servers as it goes: all are stopped below
        for name, url in urls.items():
            check_serves_the_app(name, url)
        runs = run_rounds(servers, urls, {n: s.approot for n, s in sites.items()}, rounds, seconds, warmup)
        for name, url in urls.items():
            check_serves_the_app(name, url)
    finally:
        for server in servers.values():
            server.stop()
    return {"rounds": rounds, "seconds": seconds, "connections": CONNECTIONS, "shared_pool": shared, "runs": runs}


def restart_once(server: ApacheServer, url: str, restart_txt: Path, timeout: float = 30) -> dict:
    """Under load (8 clients), touch restart.txt; how long until a new process answers."""
    from tests.support.load import Load

    with Load(url + "/pid", clients=CONNECTIONS, limit=timeout + 10) as load:
        time.sleep(1.5)  # steady state: the old processes' pids
        old = {s.body for s in load.result.samples if s.status == 200}
        t0 = time.monotonic()
        mtime = max(time.time(), os.stat(restart_txt).st_mtime + 1.5)  # Passenger compares whole seconds
        os.utime(restart_txt, (mtime, mtime))
        new_at = None
        while new_at is None and time.monotonic() < t0 + timeout:
            time.sleep(0.05)
            fresh = [s for s in list(load.result.samples) if s.start >= t0 and s.status == 200 and s.body not in old]
            new_at = min((s.start + s.latency for s in fresh), default=None)
        time.sleep(0.5)
    samples = [s for s in load.result.samples if s.start >= t0 and (new_at is None or s.start <= new_at)]
    return {"restart_s": (new_at - t0) if new_at else None,
            "failed": sum(not load.result.acceptable(s, maintenance_ok=False) for s in samples),
            "worst_latency_s": max((s.latency for s in samples), default=0.0), "requests": len(samples)}


def restarts(made: dict[str, bench_sites.BenchSite], rounds: int) -> dict[str, list[dict]]:
    """Time from touching restart.txt to a new process serving, for each variant, in rotated rounds.
    PassengerStatThrottleRate 0 (restart.txt checked at every request; the default, 10 s, would add a
    random 0-10 s wait for Passenger to look, the same for every variant)."""
    servers: dict[str, ApacheServer] = {}
    out: dict[str, list[dict]] = {n: [] for n in made}
    try:
        urls = {}
        for name, site in made.items():
            workdir = bench_sites.BASE / f"apache-restart-{name}"
            server = ApacheServer(workdir, stat_throttle_rate=0)
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            server.add_site(name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP, python=site.python)
            servers[name] = server
            server.start()
            urls[name] = server.site_url(name)
            check_serves_the_app(name, urls[name])
        for order in rotations(list(made), rounds):
            for name in order:
                out[name].append(restart_once(servers[name], urls[name], made[name].approot / "tmp" / "restart.txt"))
    finally:
        for server in servers.values():
            server.stop()
    return out


def report(data: dict) -> list[tuple[str, str, str]]:
    """(what, value, ratio to bare) rows."""
    runs = data["runs"]
    rows = []
    for name in runs:
        rps = [r["rps"] for r in runs[name]]
        p50 = summary([r["p50_ms"] for r in runs[name]])["median"]
        p99 = summary([r["p99_ms"] for r in runs[name]])["median"]
        ratio = "1" if name == "bare" else ratio_text(paired_ratios(rps, [r["rps"] for r in runs["bare"]]))
        rows.append((f"Passenger req/s {name}", f"{summary(rps)['median']:.0f} (p50 {p50:.2f} ms, p99 {p99:.2f} ms)",
                     ratio))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", default="", help="comma-separated variants, in warm-up order (default: all)")
    parser.add_argument("--shared-pool", action="store_true",
                        help="all sites in one Apache (one Passenger pool of 6), to see the warm-up order decide")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 8)
    seconds = args.seconds or (2 if args.quick else 5)
    data = measure(rounds, seconds, warmup=1 if args.quick else 3,
                   only=tuple(n for n in args.only.split(",") if n), shared=args.shared_pool)
    for row in report(data):
        print(f"{row[0]:<28} {row[1]:<40} {row[2]}")
    for name, runs in data["runs"].items():
        print(name, "processes", [r["processes"] for r in runs], "spawned", [r["spawned"] for r in runs],
              "rss", runs[-1]["rss_kb"], "threads", runs[-1]["threads"], "fds", runs[-1]["fds"],
              "app cpu/req us", [round(r["app_cpu_s"] / r["requests"] * 1e6) for r in runs],
              "server cpu/req us", [round(r["server_cpu_s"] / r["requests"] * 1e6) for r in runs])
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
