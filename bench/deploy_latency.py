"""What a deploy costs the visitors of a busy site, through real Apache + Passenger.

    sudo python bench/deploy_latency.py            # 3 rounds, about 2 minutes
    sudo python bench/deploy_latency.py --quick    # 1 round
    sudo python bench/deploy_latency.py --json out.json

Client threads of tests/support/load.py request a shim'd site on loopback without pause. Each
round measures, one after the other (alternated: deploy, deploy --maint, deploy, ...):

- steady state: the same load with nothing happening (worst and p99 latency);
- `wsgi-shim deploy` and `wsgi-shim deploy --maint`: failed requests (neither the app's 200 nor
  the maintenance 503), maintenance responses, and the worst latency of a request sent while
  the deploy ran (until the new release served);
- `wsgi-shim deploy` of a release that fails its first request (it imports cleanly and reads a
  configuration file, which is missing, at its first request): the 5xx visitors got while the
  deploy ran (goal 0: the request before the switch refuses it) beside the worst extra wait;
- `wsgi-shim deploy` of a release that fails only in production: it answers the check's request
  (the site's [check] requests = ["/healthz"]) and the deploy's --url (/healthz), and fails the
  visitors' /: the 5xx they got until the previous release served again (the deploy backs out at
  the first; the goal: at most one restart interval's), how many after the deploy exited.

"extra" is the worst latency during the deploy minus the worst of the steady state before it:
what the deploy added. Medians over rounds, with min-max, side by side. Needs root (real
Apache + Passenger and the test accounts, as the e2e tests); the issue's goal: at most 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.accounts import PROJECT_GROUP, SITE_USER, ensure_accounts  # noqa: E402
from tests.support.apache import ApacheServer, poll  # noqa: E402
from tests.support.load import Load  # noqa: E402
from tests.support.sites import make_site, shared_venv, update_config, write_file, wsgi_shim  # noqa: E402

E2E_BASE = Path(os.environ.get("WSGI_SHIM_E2E_DIR", "/srv/wsgi-shim-e2e"))


def app(body: str) -> str:
    return ("def application(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [b'{body}']\n")


def broken_app(body: str) -> str:
    """Imports cleanly; its first request reads settings.ini, which the release lacks."""
    return ("import functools\n\n"
            "@functools.cache\n"
            "def settings():\n"
            "    return open('settings.ini').read()\n\n"
            "def application(environ, start_response):\n"
            "    settings()\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [b'{body}']\n")


def production_app(body: str) -> str:
    """Answers /healthz (the check's request); every other path reads settings.ini, which the
    release lacks: only the visitors' requests fail."""
    return ("def application(environ, start_response):\n"
            "    if environ.get('PATH_INFO') != '/healthz':\n"
            "        open('settings.ini').read()\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [b'{body}']\n")


def shim(*args: str, may_fail: bool = False) -> int:
    r = wsgi_shim(*args)
    if r.returncode != 0 and not (may_fail and r.returncode == 1):
        raise SystemExit(f"wsgi-shim {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.returncode


def one(site, url: str, n: int, variant: str, clients: int, steady: float) -> dict:
    """Steady state, then one deploy of release vN, under the same load."""
    src = site.site.parent / f"v{n}"
    write_file(src / "app.py", app(f"v{n}"))
    if variant in (FAILING, PRODUCTION):
        return failing(site, url, n, src, clients, steady, variant)
    maint = variant == "deploy --maint"
    with Load(url, clients=clients, limit=steady + 120) as load:
        time.sleep(steady)
        t0 = time.monotonic()
        flags = ["--maint", "--url", url] if maint else ["--wait", "30", "--url", url]
        shim("deploy", str(site.site), str(src), *flags)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(s.body == f"v{n}".encode()
                                                       for s in load.result.samples[-20:]):
            time.sleep(0.1)
        t1 = time.monotonic()
        time.sleep(1)
    r = load.result
    calm = r.worst_latency(until=t0)
    during = r.worst_latency(since=t0, until=t1)
    return {"variant": "deploy --maint" if maint else "deploy", "requests": len(r.samples),
            "failed": len(r.failures()), "maintenance": r.counts()[(503, "maintenance")],
            "steady_worst": calm, "deploy_worst": during, "extra": max(0.0, during - calm),
            "deploy_seconds": t1 - t0}


FAILING = "deploy, fails 1st request"
PRODUCTION = "deploy, fails in production"
VARIANTS = ("deploy", "deploy --maint", FAILING, PRODUCTION)


def failing(site, url: str, n: int, src: Path, clients: int, steady: float, variant: str) -> dict:
    """Steady state, then a deploy of a release that fails its first request (VARIANT FAILING),
    or only the visitors' (PRODUCTION), until the app serves again; if the release stayed live
    (nothing caught it), a rollback afterwards, outside the measured window."""
    production = variant == PRODUCTION
    write_file(src / "app.py", (production_app if production else broken_app)(f"v{n}"))
    with Load(url, clients=clients, limit=steady + 120) as load:
        time.sleep(steady)
        t0 = time.monotonic()
        watched = url + "healthz" if production else url
        code = shim("deploy", str(site.site), str(src), "--wait", "30", "--url", watched, may_fail=True)
        t1 = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (len(load.result.samples) >= 20 and all(
                s.status == 200 for s in load.result.samples[-20:])):
            time.sleep(0.1)
        time.sleep(1)
    live = code == 0
    if live:
        shim("rollback", str(site.site), "--wait", "30", "--url", url)
    r = load.result
    calm = r.worst_latency(until=t0)
    during = r.worst_latency(since=t0, until=t1)
    errors = [s for s in r.samples if s.start >= t0 and s.kind != "maintenance" and (s.status >= 500 or s.status == 0)]
    return {"variant": variant, "requests": len(r.samples), "failed": len(r.failures()),
            "maintenance": r.counts()[(503, "maintenance")], "visitor_5xx": len(errors), "went_live": live,
            "after_exit_5xx": len([s for s in errors if s.start > t1]),
            "steady_worst": calm, "deploy_worst": during, "extra": max(0.0, during - calm),
            "deploy_seconds": t1 - t0}


def table(results: list[dict]) -> str:
    lines = [f"{'':28}{'failed':>8}{'503 maint':>11}{'steady worst':>14}{'deploy worst':>14}"
             f"{'extra (min-max)':>24}{'deploy s':>10}{'visitor 5xx':>13}"]
    for variant in VARIANTS:
        rs = [r for r in results if r["variant"] == variant]
        if not rs:
            continue

        def med(key: str) -> float:
            return statistics.median(r[key] for r in rs)

        extra = [r["extra"] for r in rs]
        fives = str(sum(r["visitor_5xx"] for r in rs)) if variant in (FAILING, PRODUCTION) else ""
        lines.append(f"{variant:28}{sum(r['failed'] for r in rs):>8}{sum(r['maintenance'] for r in rs):>11}"
                     f"{med('steady_worst') * 1000:>11.0f} ms{med('deploy_worst') * 1000:>11.0f} ms"
                     f"{med('extra') * 1000:>9.0f} ms ({min(extra) * 1000:.0f}-{max(extra) * 1000:.0f})"
                     f"{med('deploy_seconds'):>10.1f}{fives:>13}")
    plain = [r["extra"] for r in results if r["variant"] == "deploy"]
    maint = [r["extra"] for r in results if r["variant"] == "deploy --maint"]
    if plain and maint and statistics.median(plain) > 0:
        lines.append(f"extra latency, --maint / plain: {statistics.median(maint) / statistics.median(plain):.2f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--steady", type=float, default=5, help="seconds of steady state before each deploy")
    ap.add_argument("--json", metavar="FILE", help="also write the raw numbers here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/deploy_latency.py needs root (a private Apache, the test accounts)")
    rounds = 1 if args.quick else args.rounds
    ensure_accounts()
    shared_venv()
    E2E_BASE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s-bench-", dir=E2E_BASE))
    # Ours while we run: an e2e session starting meanwhile (tests/e2e/conftest.py) reaps every
    # s-* directory without a live owner, stopping its Apache in the middle of a measurement.
    (work / "owner.pid").write_text(str(os.getpid()))
    os.chmod(work, 0o755)
    apache = ApacheServer(work / "apache")
    try:
        site = make_site("bench-deploy")
        url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                           group=PROJECT_GROUP, python=shared_venv() / "bin" / "python") + "/"
        # The check requests /healthz: a release that fails only other paths passes it.
        update_config(site, {"check": {"requests": ["/healthz"]}})
        write_file(site.site.parent / "v0" / "app.py", app("v0"))
        shim("deploy", str(site.site), str(site.site.parent / "v0"), "--init", "--wait", "30", "--url", url)
        poll(url, lambda r: r.status == 200 and "v0" in r.body, timeout=30)
        results, n = [], 0
        for _ in range(rounds):
            for variant in VARIANTS:
                n += 1
                results.append(one(site, url, n, variant, args.clients, args.steady))
                print(f"  round {n}: {variant}: {results[-1]['failed']} failed, extra "
                      f"{results[-1]['extra'] * 1000:.0f} ms"
                      + (f", {results[-1]['visitor_5xx']} visitor 5xx" if "visitor_5xx" in results[-1] else ""),
                      flush=True)
        print(f"\nworst extra latency a deploy adds, {args.clients} clients on loopback, real Apache + "
              f"Passenger (PassengerStatThrottleRate 1), {rounds} round(s):")
        print(table(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        apache.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
