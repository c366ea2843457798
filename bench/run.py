"""Every benchmark, side by side, in one run: the bare app, wsgi-shim (this checkout) and
wsgi-shim 0.1.0 (PyPI), printed as one table of ratios and written as raw JSON.

    sudo python3 bench/run.py [--quick] [--json FILE]      (or: inv bench [--quick])

  a. per request, in process: the callable Passenger gets, called directly (bench/inprocess.py),
     and one real Passenger app process driven over its socket, CPU per request (bench/worker.py);
     a failed request's masking with a 3,600-line PEM bundle as a secret file / none (bench/masking.py)
  b. start-up: Passenger's own wsgi-loader.py loading passenger_wsgi.py (bench/startup.py)
  c. through real Apache + Passenger, wrk on loopback, one Apache per site (bench/passenger.py)
  d. restart: touch restart.txt under load, time until a new process serves (bench/passenger.py);
     deploy and deploy --maint under load: failed requests, worst extra latency; a deploy of a
     release that fails its first request: the 5xx visitors got (goal 0) beside the worst extra
     latency (bench/deploy_latency.py, the deploy issue's benchmark, run as it is when present)
  e. `wsgi-shim check` on a real site (0.1.0's `check` beside it); `inv build-python` on an
     already-built prefix (when one exists, see BUILT_PREFIX)
  f. a real Wagtail site (`wagtail start`), through real Apache + Passenger: the first request
     after a restart with the deploy's compile step and without, the worst extra wait a deploy
     adds under load, and wsgi-shim's share of a process start (bench/real_site.py)

Variants alternate in rounds (each round starts with the next one), so drift in the machine's load
hits all alike; every figure is the median over rounds with its spread (quartiles, or min-max
under 4 rounds), and every ratio is the median of the round-by-round ratios. Needs root: real
users, Apache + Passenger. Full run: about 10 minutes; --quick: about 4, the first time more
(pip downloads Wagtail once; its short runs only indicate).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import sites as bench_sites  # noqa: E402
from bench.stats import paired_diffs, paired_ratios, ratio_text, rotations, value_text  # noqa: E402

DEFAULT_JSON = REPO / "bench" / "results.json"
BUILT_PREFIX = bench_sites.BASE / "python-3.11.2"  # made by a `--build-python` run, reused after
LABEL = {"bare": "bare app", "ours-off": "ours, diagnostics off", "ours": "ours (defaults)",
         "v010": "wsgi-shim 0.1.0"}


# -- the sections ------------------------------------------------------------------------------

def per_request(made: dict, quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    from bench import inprocess

    sites = {"bare": made["bare"], "ours-off": bench_sites.ours_off_site(), "ours": made["ours"],
             "v010": made["v010"]}
    data = inprocess.measure(sites, bench_sites.BODY, rounds=3 if quick else 12, calls=20_000 if quick else 100_000)
    ns = data["ns_per_call"]
    rows = [(f"a. per call, in process: {LABEL[n]} ({data['callable'][n]})", value_text(v, "ns", 0),
             "1" if n == "bare" else ratio_text(paired_ratios(v, ns["bare"]))) for n, v in ns.items()]
    return data, rows


def one_worker(made: dict, quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    from bench import worker

    sites = {n: made[n] for n in ("bare", "ours", "v010")}
    data = worker.per_request(sites, rounds=3 if quick else 12, requests=1000 if quick else 3000)
    cpu = data["cpu_us_per_request"]
    rows = [(f"a. per request, one real Passenger app process (CPU): {LABEL[n]}", value_text(v, "us"),
             "1" if n == "bare" else ratio_text(paired_ratios(v, cpu["bare"]))) for n, v in cpu.items()]
    rows += [(f"a. that process afterwards: {LABEL[n]}",
              f"RSS {p['rss_kb'] / 1024:.1f} MiB, {p['threads']} thread(s), {p['fds']} open files", "")
             for n, p in data["process"].items()]
    return data, rows


def masking(quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    from bench import masking as masking_bench

    data = masking_bench.measure(rounds=3 if quick else 9, requests=100 if quick else 300)
    return data, masking_bench.rows(data)


def start_up(made: dict, quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    from bench import startup

    sites = {n: made[n] for n in ("bare", "ours", "v010")}
    data = startup.measure(sites, rounds=4 if quick else 30)
    load, ready = data["load_ms"], data["ready_ms"]
    rows = []
    for n in sites:
        added = paired_diffs(load[n], load["bare"])
        rows.append((f"b. start-up, loading passenger_wsgi.py: {LABEL[n]}", value_text(load[n], "ms"),
                     "-" if n == "bare" else "added " + value_text(added, "ms")))
    for n in sites:
        rows.append((f"b. start-up, exec to ready: {LABEL[n]}", value_text(ready[n], "ms"),
                     "1" if n == "bare" else ratio_text(paired_ratios(ready[n], ready["bare"]))))
    ours_added = paired_diffs(load["ours"], load["bare"])
    v010_added = paired_diffs(load["v010"], load["bare"])
    rows.append(("b. start-up added: ours / 0.1.0's", "", ratio_text(paired_ratios(ours_added, v010_added))))
    return data, rows


def through_passenger(made: dict, quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    from bench import passenger

    data = passenger.measure(rounds=3 if quick else 16, seconds=2 if quick else 4, warmup=2 if quick else 3,
                             made={n: made[n] for n in ("bare", "ours", "v010")})
    runs = data["runs"]
    rows = []
    for n, rs in runs.items():
        rps = [r["rps"] for r in rs]
        base = [r["rps"] for r in runs["bare"]]
        rows.append((f"c. Passenger, req/s: {LABEL[n]}", value_text(rps, "/s", 0),
                     "1" if n == "bare" else ratio_text(paired_ratios(rps, base))))
    for n, rs in runs.items():
        p50 = [r["p50_ms"] for r in rs]
        p99 = [r["p99_ms"] for r in rs]
        rows.append((f"c. Passenger, latency p50 / p99: {LABEL[n]}",
                     f"{value_text(p50, 'ms', 2)} / {value_text(p99, 'ms', 1)}",
                     "1" if n == "bare" else ratio_text(paired_ratios(p50, [r['p50_ms'] for r in runs['bare']]))
                     + " / " + ratio_text(paired_ratios(p99, [r['p99_ms'] for r in runs['bare']]))))
    for n, rs in runs.items():
        cpu = [(r["app_cpu_s"] + r["server_cpu_s"]) / r["requests"] * 1e6 for r in rs]
        base = [(r["app_cpu_s"] + r["server_cpu_s"]) / r["requests"] * 1e6 for r in runs["bare"]]
        rows.append((f"c. Passenger, CPU per request (app + Apache + core): {LABEL[n]}", value_text(cpu, "us", 0),
                     "1" if n == "bare" else ratio_text(paired_ratios(cpu, base))))
    for n, rs in runs.items():
        last = rs[-1]
        rows.append((f"c. Passenger, the pool: {LABEL[n]}",
                     f"{last['processes']} processes, {sum(r['spawned'] for r in rs)} started during the runs, "
                     f"RSS {sorted(last['rss_kb'])[len(last['rss_kb']) // 2] / 1024:.1f} MiB, "
                     f"threads {max(last['threads'])}", ""))
    bad = {n: sum(r["non_2xx"] + r["errors"] for r in rs) for n, rs in runs.items()}
    rows.append(("c. Passenger, failed requests (non-2xx, socket errors)",
                 ", ".join(f"{n} {v}" for n, v in bad.items()), ""))
    return data, rows


def restarts(made: dict, quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    from bench import passenger

    data = passenger.restarts({n: made[n] for n in ("bare", "ours", "v010")}, rounds=1 if quick else 5)
    rows = []
    for n, rs in data.items():
        seconds = [r["restart_s"] * 1000 for r in rs if r["restart_s"] is not None]
        base = [r["restart_s"] * 1000 for r in data["bare"] if r["restart_s"] is not None]
        rows.append((f"d. restart.txt touched to a new process serving (8 clients): {LABEL[n]}",
                     value_text(seconds, "ms", 0) + f", {sum(r['failed'] for r in rs)} failed"
                     + (f", {len(rs) - len(seconds)} never" if len(seconds) < len(rs) else ""),
                     "1" if n == "bare" else ratio_text(paired_ratios(seconds, base))))
    return data, rows


def deploys(quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    """The deploy issue's benchmark (bench/deploy_latency.py), run as it is and read from its JSON."""
    script = REPO / "bench" / "deploy_latency.py"
    if not script.exists():
        return {"skipped": "bench/deploy_latency.py is not in this checkout"}, [
            ("d. deploy / deploy --maint under load", "not measured", "bench/deploy_latency.py missing")]
    from bench import deploy_latency

    out = bench_sites.BASE / "deploy_latency.json"
    cmd = [sys.executable, str(script), "--json", str(out)] + (["--quick", "--steady", "2"] if quick else [])
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=1800)
    results = json.loads(out.read_text())
    rows = []
    for variant in ("deploy", "deploy --maint"):
        rs = [r for r in results if r["variant"] == variant]
        extra = [r["extra"] * 1000 for r in rs]
        rows.append((f"d. `wsgi-shim {variant}` under load (8 clients): failed requests, worst extra latency",
                     f"{sum(r['failed'] for r in rs)} failed of {sum(r['requests'] for r in rs)}; "
                     + value_text(extra, "ms", 0), f"{len(rs)} deploy(s), 503s seen: "
                     + str(sum(r["maintenance"] for r in rs))))
    failing = [r for r in results if r["variant"] == deploy_latency.FAILING]
    if failing:
        rows.append(("d. `wsgi-shim deploy` of a release that fails its first request (8 clients): "
                     "visitor 5xx (goal 0), worst extra latency",
                     f"{sum(r['visitor_5xx'] for r in failing)} 5xx of {sum(r['requests'] for r in failing)}; "
                     + value_text([r["extra"] * 1000 for r in failing], "ms", 0),
                     f"{len(failing)} deploy(s), went live: {sum(r['went_live'] for r in failing)}"))
    production = [r for r in results if r["variant"] == deploy_latency.PRODUCTION]
    if production:
        rows.append(("d. `wsgi-shim deploy` of a release only visitors' requests fail (8 clients): 5xx, extra latency",
                     f"{sum(r['visitor_5xx'] for r in production)} 5xx of {sum(r['requests'] for r in production)}"
                     f" ({sum(r['after_exit_5xx'] for r in production)} after the deploy exited); "
                     + value_text([r["extra"] * 1000 for r in production], "ms", 0),
                     f"{len(production)} deploy(s), rolled back: {sum(not r['went_live'] for r in production)}"))
    return {"runs": results, "command": cmd}, rows


def real_site(quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    """The real-site issue's benchmark (bench/real_site.py), run as it is and read from its JSON."""
    from bench import real_site as bench_real

    out = bench_sites.BASE / "real_site.json"
    cmd = [sys.executable, str(REPO / "bench" / "real_site.py"), "--json", str(out)] + \
        (["--quick", "--steady", "2"] if quick else [])
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=2400)
    data = json.loads(out.read_text())
    rows = [(f"f. Wagtail, compile | --no-compile: {label}", values, ratio)
            for label, values, ratio in bench_real.rows(data)]
    return {"runs": data, "command": cmd}, rows


def check_time(made: dict, quick: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    from tests.support.sites import run_as_site

    commands = {"ours": [str(made["ours"].python.parent / "wsgi-shim"), "check", str(made["ours"].approot.parent)],
                "v010": [str(made["v010"].python), "-m", "wsgi_shim", "check", str(made["v010"].approot.parent)]}
    times: dict[str, list[float]] = {n: [] for n in commands}
    for order in rotations(list(commands), 3 if quick else 10):
        for name in order:
            t0 = time.perf_counter()
            proc = run_as_site(commands[name], timeout=300)
            times[name].append((time.perf_counter() - t0) * 1000)
            if proc.returncode != 0:
                raise RuntimeError(f"{commands[name]} failed: {proc.stdout}\n{proc.stderr}")
    rows = [("e. `wsgi-shim check SITE` wall time: ours", value_text(times["ours"], "ms", 0),
             "vs 0.1.0's " + ratio_text(paired_ratios(times["ours"], times["v010"]))),
            ("e. `python -m wsgi_shim check SITE` wall time: 0.1.0", value_text(times["v010"], "ms", 0), "")]
    return {"ms": times, "commands": commands}, rows


def build_python_time(quick: bool, build: bool) -> tuple[dict, list[tuple[str, str, str]]]:
    tarball = os.environ.get("WSGI_SHIM_PYTHON_TARBALL", "")
    cmd = [sys.executable, "-m", "invoke", "-r", str(REPO), "build-python", "--version", "3.11.2",
           "--prefix", str(BUILT_PREFIX), "--workdir", str(bench_sites.BASE / "build-python")]
    if tarball:
        cmd += ["--source", tarball]
    if not (BUILT_PREFIX / "bin" / "python3.11").exists():
        if not build:
            return {"skipped": f"no built prefix at {BUILT_PREFIX}"}, [(
                "e. `inv build-python` on an already-built prefix", "not measured", "no build yet: --build-python")]
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)  # the one real build (minutes)
    times = []
    for _ in range(2 if quick else 5):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True)
        times.append((time.perf_counter() - t0) * 1000)
    return {"ms": times, "command": cmd}, [("e. `inv build-python` on an already-built prefix",
                                            value_text(times, "ms", 0), "")]


# -- the run -----------------------------------------------------------------------------------

def machine() -> dict:
    def first(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return {"cpu": model, "cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                                                     * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(), "python": first(["/usr/bin/python3", "--version"]),
            "apache": first(["/usr/sbin/apache2", "-v"]).removeprefix("Server version: "),
            "passenger": first(["passenger-config", "--version"]).rpartition(" ")[2],
            "wrk": first(["wrk", "--version"]), "load_average": os.getloadavg(),
            "commit": first(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def table(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = [f"{'measurement':<{width}}  {'median (spread)':<{vwidth}}  ratio to bare (spread)",
             "-" * (width + vwidth + 28)]
    lines += [f"{what:<{width}}  {value:<{vwidth}}  {ratio}" for what, value, ratio in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds (about 4 minutes)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"raw numbers (default {DEFAULT_JSON})")
    parser.add_argument("--only", default="a,b,c,d,e,f", help="sections to run, e.g. a,b (default: all)")
    parser.add_argument("--build-python", action="store_true",
                        help=f"build CPython 3.11.2 into {BUILT_PREFIX} first if it is not there (minutes)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (real users, Apache + Passenger); run it with sudo", file=sys.stderr)
        return 2
    only = set(args.only.split(","))
    started = time.monotonic()
    info = machine()
    made = bench_sites.make_all()
    results: dict[str, object] = {"machine": info, "quick": args.quick}
    rows: list[tuple[str, str, str]] = []
    steps = [("a", "per_request", lambda: per_request(made, args.quick)),
             ("a", "per_request_worker", lambda: one_worker(made, args.quick)),
             ("a", "masking", lambda: masking(args.quick)),
             ("b", "start_up", lambda: start_up(made, args.quick)),
             ("c", "passenger", lambda: through_passenger(made, args.quick)),
             ("d", "restarts", lambda: restarts(made, args.quick)),
             ("d", "deploys", lambda: deploys(args.quick)),
             ("e", "check", lambda: check_time(made, args.quick)),
             ("e", "build_python", lambda: build_python_time(args.quick, args.build_python)),
             ("f", "real_site", lambda: real_site(args.quick))]
    for letter, key, step in steps:
        if letter not in only:
            continue
        print(f"bench: {key} ...", file=sys.stderr, flush=True)
        data, new_rows = step()
        results[key] = data
        rows += new_rows
    results["load_average_after"] = os.getloadavg()
    results["seconds"] = round(time.monotonic() - started)
    print(f"wsgi-shim benchmarks ({'quick' if args.quick else 'full'}), {info['date']}, commit {info['commit']}")
    print(f"{info['cpus']} x {info['cpu']}, {info['memory_gib']} GiB; {info['apache']}; Passenger {info['passenger']}; "
          f"{info['python']}; "
          f"load average {info['load_average'][0]:.1f} before, {results['load_average_after'][0]:.1f} after")
    print(table(rows))
    args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"raw numbers: {args.json}  ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
