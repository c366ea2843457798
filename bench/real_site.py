"""A real Wagtail site through real Apache + Passenger: what the deploy's compile step saves the
first visitor after a restart, and what a deploy costs the visitors of a busy site.

    sudo python3 bench/real_site.py            # 3 rounds, about 4 minutes
    sudo python3 bench/real_site.py --quick    # 1 round (and fewer start-ups)
    sudo python3 bench/real_site.py --json out.json

The site is made by `wagtail start` from the pinned Wagtail (tests/support/realsites.py, as
tests/e2e/test_real_sites.py makes it), with its own venv, deployed once with migrate and
collectstatic. Then rounds alternate two variants of the same code change (a new release, no
release commands): `wsgi-shim deploy` (the compile step) and `wsgi-shim deploy --no-compile`:

- first request: the deploy touches restart.txt; after Passenger's stat throttle the first GET /
  is timed (Passenger starts a process: wsgi-shim, Django and Wagtail load, and the request
  imports what it needs), then the second one;
- under load (8 clients on loopback): steady state, then the deploy with --wait; the worst
  latency of a request sent while it ran minus the worst of the steady state before it.

And the shim's own share of a process start: Passenger's wsgi-loader.py loading the site's
passenger_wsgi.py (wsgi-shim, then Wagtail) next to a bare passenger_wsgi.py that sets the same
environment and imports mysite.wsgi itself (bench/worker.py), alternated. That share is what
wsgi-shim adds to the longest wait of a visitor during a deploy; the issue's goal: at most 50 ms.
Needs root (real Apache + Passenger, the test accounts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import sites as bench_sites  # noqa: E402
from bench.stats import paired_diffs, paired_ratios, ratio_text, rotations, value_text  # noqa: E402
from tests.support.accounts import PROJECT_GROUP, SITE_USER, ensure_accounts, gid, uid  # noqa: E402
from tests.support.apache import ApacheServer, http_get, poll  # noqa: E402
from tests.support.load import Load  # noqa: E402

E2E_BASE = Path(os.environ.get("WSGI_SHIM_E2E_DIR", "/srv/wsgi-shim-e2e"))
VARIANTS = ("compile", "no-compile")
FLAGS = {"compile": [], "no-compile": ["--no-compile"]}
THROTTLE = 1.0  # PassengerStatThrottleRate of the private Apache
BARE_WSGI = """\
# The same app without wsgi-shim: the environment config.toml gives it, then mysite.wsgi.
import os
import sys

os.environ.update({environment!r})
os.chdir({chdir!r})
sys.path.insert(0, {chdir!r})
from mysite.wsgi import application  # noqa: E402,F401
"""


class RealSite:
    """The Wagtail site, its project and its URL, behind one private Apache."""

    def __init__(self, work: Path, apache: ApacheServer) -> None:
        from tests.support import realsites
        from tests.support.sites import _checked, run_as_site, update_config

        self.parent = work / "wagtail"
        self.parent.mkdir(mode=0o755)
        os.chown(self.parent, uid(), gid())
        self.project = realsites.wagtail_project(self.parent)
        realsites.pin_requirements(self.project, "wagtail")
        self.site, self.venv = realsites.own_venv_site(self.parent, "mysite.wsgi.application")
        realsites.configure_wagtail(self.site)
        update_config(self.site, {"wsgi": {"chdir": "current"}})
        self.url = apache.serve("bench-wagtail", self.site.approot, self.site.docroot, user=SITE_USER,
                                group=PROJECT_GROUP, python=self.venv / "bin/python") + "/"
        self.site.maint_txt.unlink()
        self._run, self._checked = run_as_site, _checked
        self.deploy("--run", "python manage.py migrate --noinput", "--run", "python manage.py collectstatic --noinput",
                    "--wait", "60", "--url", self.url)
        poll(self.url, lambda r: r.status == 200 and "x-wsgi-shim" not in r.headers, timeout=60)

    def deploy(self, *flags: str) -> float:
        """`wsgi-shim deploy SITE PROJECT FLAGS` as the site's user; its wall time in seconds."""
        t0 = time.perf_counter()
        self._checked(self._run([str(self.venv / "bin/wsgi-shim"), "deploy", str(self.site.site),
                                 str(self.project), *flags], timeout=900))
        return time.perf_counter() - t0

    def newest_start(self) -> float:
        from shim.runtime import records

        starts = records.read_starts(self.site.approot / "logs" / "starts.jsonl")
        return starts[-1]["epoch"] if starts else 0.0


def _timed_get(url: str) -> float:
    t0 = time.perf_counter()
    r = http_get(url, timeout=120)
    elapsed = (time.perf_counter() - t0) * 1000
    if r.status != 200 or "x-wsgi-shim" in r.headers:
        raise RuntimeError(f"{url} answered {r.status} {r.headers.get('x-wsgi-shim', '')}: {r.body[:500]}")
    return elapsed


def first_request(real: RealSite, variant: str) -> dict:
    """Deploy (the restart.txt touch), then time the first request and the second."""
    seconds = real.deploy(*FLAGS[variant])
    done = time.time()
    time.sleep(THROTTLE + 0.5)  # Passenger looks at restart.txt at most once per throttle window
    first = _timed_get(real.url)
    if real.newest_start() < done:
        raise RuntimeError("the first request after the deploy was not answered by a new process")
    return {"variant": variant, "first_ms": first, "second_ms": _timed_get(real.url), "deploy_s": seconds}


def under_load(real: RealSite, variant: str, clients: int, steady: float) -> dict:
    with Load(real.url, clients=clients, limit=steady + 300) as load:
        time.sleep(steady)
        t0 = time.monotonic()
        seconds = real.deploy(*FLAGS[variant], "--wait", "60", "--url", real.url)
        t1 = time.monotonic()
        time.sleep(1)
    r = load.result
    calm, during = r.worst_latency(until=t0), r.worst_latency(since=t0, until=t1)
    return {"variant": variant, "requests": len(r.samples), "failed": len(r.failures()),
            "steady_worst": calm, "deploy_worst": during, "extra": max(0.0, during - calm), "deploy_s": seconds}


def start_share(real: RealSite, work: Path, rounds: int) -> dict[str, list[float]]:
    """Passenger's loader loading passenger_wsgi.py: through wsgi-shim, and bare (same env)."""
    import tomllib

    from bench.worker import Worker
    from tests.support.sites import write_file

    config = tomllib.loads(real.site.config_toml.read_text())
    environment = {**config["environment"], **config["secret_files"]}
    bare_root = work / "bare-approot"
    write_file(bare_root / "passenger_wsgi.py",
               BARE_WSGI.format(environment=environment, chdir=str(real.site.approot / "current")))
    os.chmod(bare_root, 0o750)
    sites = {"ours": bench_sites.BenchSite("ours", real.site.approot, real.site.docroot, real.venv / "bin/python"),
             "bare": bench_sites.BenchSite("bare", bare_root, real.site.docroot, real.venv / "bin/python")}
    expect = b"</html>"
    for site in sites.values():  # warm: the page cache, and wsgi-shim's parsed config.toml
        Worker.spawn(site, timeout=120, expect=expect).close()
    load: dict[str, list[float]] = {n: [] for n in sites}
    for order in rotations(list(sites), rounds):
        for name in order:
            worker = Worker.spawn(sites[name], timeout=120, expect=expect)
            worker.close()
            load[name].append(worker.load_ms)
    return load


def measure(quick: bool, clients: int, steady: float) -> dict:
    ensure_accounts()
    E2E_BASE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s-real-", dir=E2E_BASE))
    # Ours while we run: an e2e session starting meanwhile (tests/e2e/conftest.py) reaps every
    # s-* directory without a live owner, stopping its Apache in the middle of a measurement.
    (work / "owner.pid").write_text(str(os.getpid()))
    os.chmod(work, 0o755)
    apache = ApacheServer(work / "apache", stat_throttle_rate=int(THROTTLE))
    try:
        real = RealSite(work, apache)
        rounds = 1 if quick else 3
        first, loaded = [], []
        for order in rotations(list(VARIANTS), 2 * rounds):
            for variant in order:
                first.append(first_request(real, variant))
                print(f"  first request, {variant}: {first[-1]['first_ms']:.0f} ms", file=sys.stderr, flush=True)
        for order in rotations(list(VARIANTS), rounds):
            for variant in order:
                loaded.append(under_load(real, variant, clients, steady))
                print(f"  under load, {variant}: extra {loaded[-1]['extra'] * 1000:.0f} ms, "
                      f"{loaded[-1]['failed']} failed", file=sys.stderr, flush=True)
        share = start_share(real, work, 5 if quick else 20)
        return {"first_request": first, "under_load": loaded, "start_load_ms": share, "clients": clients,
                "rounds": rounds, "wagtail": _pinned("wagtail"), "django": _pinned("django")}
    finally:
        apache.stop()
        shutil.rmtree(work, ignore_errors=True)


def _pinned(package: str) -> str:
    from tests.support.realsites import pinned_version

    return pinned_version("wagtail", package)


def rows(data: dict) -> list[tuple[str, str, str]]:
    """(what, the values side by side, their ratio named) rows for the table."""
    def of(runs: list[dict], variant: str, key: str, scale: float = 1.0) -> list[float]:
        return [r[key] * scale for r in runs if r["variant"] == variant]

    out = []
    for label, runs, key, scale, unit in (
            ("first request after the restart", data["first_request"], "first_ms", 1, "ms"),
            ("second request", data["first_request"], "second_ms", 1, "ms"),
            ("the deploy command", data["first_request"], "deploy_s", 1, "s"),
            (f"under load ({data['clients']} clients): worst extra wait", data["under_load"], "extra", 1000, "ms"),
            ("under load: steady worst", data["under_load"], "steady_worst", 1000, "ms")):
        a, b = of(runs, "compile", key, scale), of(runs, "no-compile", key, scale)
        digits = 1 if unit == "s" else 0
        out.append((label, f"{value_text(a, unit, digits)} | {value_text(b, unit, digits)}",
                    "compile / --no-compile " + ratio_text(paired_ratios(a, b))))
    failed = {v: sum(r["failed"] for r in data["under_load"] if r["variant"] == v) for v in VARIANTS}
    total = sum(r["requests"] for r in data["under_load"])
    out.append(("under load: failed requests (neither 200 nor maintenance)",
                f"{failed['compile']} | {failed['no-compile']} (of {total})", ""))
    load = data["start_load_ms"]
    share = paired_diffs(load["ours"], load["bare"])
    out.append(("process start, loading passenger_wsgi.py: wsgi-shim + Wagtail | bare Wagtail",
                f"{value_text(load['ours'], 'ms')} | {value_text(load['bare'], 'ms')}",
                "ours / bare " + ratio_text(paired_ratios(load["ours"], load["bare"]))))
    out.append(("wsgi-shim's share of a start (ours - bare; goal at most 50 ms)", value_text(share, "ms"), ""))
    return out


def table(data: dict) -> str:
    body = rows(data)
    width = max(len(r[0]) for r in body)
    vwidth = max(len(r[1]) for r in body)
    head = f"{'Wagtail ' + data['wagtail'] + ', Django ' + data['django']:<{width}}  " \
           f"{'compile | --no-compile':<{vwidth}}  ratio (spread)"
    return "\n".join([head, "-" * len(head)] + [f"{a:<{width}}  {b:<{vwidth}}  {c}" for a, b, c in body])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--steady", type=float, default=5, help="seconds of steady state before each deploy under load")
    ap.add_argument("--json", metavar="FILE", help="also write the raw numbers here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/real_site.py needs root (a private Apache, the test accounts)")
    data = measure(args.quick, args.clients, args.steady)
    print(f"a real Wagtail site through real Apache + Passenger (PassengerStatThrottleRate {THROTTLE:g}), "
          f"{data['rounds']} round(s), medians (spread):")
    print(table(data))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
