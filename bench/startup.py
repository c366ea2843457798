"""Start-up: what each variant adds to an app process start, next to the bare app.

    sudo python3 bench/startup.py [--quick]      (or: inv bench, which runs every benchmark)

Every start is a real Passenger app process: Passenger's own wsgi-loader.py, started as the
site's user with the app root as its working directory, until it tells Passenger it is ready
(bench/worker.py). Two figures per start: the loader's own "load the app" step (importing
passenger_wsgi.py: all that differs between the variants) and exec-to-ready (plus runuser, the
interpreter and the loader's imports, which are the same for all). Rounds alternate the variants.
A start with an unchanged config.toml reads wsgi-shim's parsed-config cache; the first start
after a change parses it (one warm-up start per variant before the rounds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.sites import BenchSite  # noqa: E402
from bench.stats import rotations  # noqa: E402
from bench.worker import Worker  # noqa: E402


def measure(sites: dict[str, BenchSite], rounds: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {"load_ms": {n: [] for n in sites},
                                              "ready_ms": {n: [] for n in sites}}
    for site in sites.values():  # warm the page cache, bytecode and wsgi-shim's config cache
        Worker.spawn(site).close()
    for order in rotations(list(sites), rounds):
        for name in order:
            worker = Worker.spawn(sites[name])
            worker.close()
            out["load_ms"][name].append(worker.load_ms)
            out["ready_ms"][name].append(worker.start_ms)
    return out


def main() -> None:
    from bench import sites as bench_sites
    from bench.stats import paired_diffs, value_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    rounds = 5 if parser.parse_args().quick else 30
    made = bench_sites.make_all()
    data = measure(made, rounds)
    for what in ("load_ms", "ready_ms"):
        base = data[what]["bare"]
        for name, values in data[what].items():
            added = "" if name == "bare" else "added " + value_text(paired_diffs(values, base), "ms")
            print(f"{what:9} {name:5} {value_text(values, 'ms'):28} {added}")


if __name__ == "__main__":
    main()
