"""What wsgi-shim costs each app process at start-up, next to a bare passenger_wsgi.py.

    python bench/startup.py            # about 20 s
    python bench/startup.py --quick

Two copies of the same site: one whose passenger_wsgi.py is wsgi-shim's (`import shim;
application = shim.get_app()`: config, every check, the app log, the middleware), one whose
passenger_wsgi.py imports the app directly. Each start is a fresh process of a venv's Python
that loads passenger_wsgi.py the way Passenger 6 does and serves one request, as Passenger's
spawn does. Rounds alternate between the two; medians and their ratio are printed. Passenger
starts a process rarely (first request, restart, pool growth), so this is a one-off cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = ("def application(environ, start_response):\n"
       "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
       "    return [b'hello']\n")
# wsgi-shim's one emulation of Passenger's loader (shim/ops/passenger_loader.py), imported by path
# as the site's Python would, then one request, as Passenger's spawn serves one.
LOADER = REPO / "shim" / "ops" / "passenger_loader.py"
LOAD = ("import importlib.util, os, sys\n"
        "spec = importlib.util.spec_from_file_location('_wsgi_shim_passenger_loader', sys.argv[1])\n"
        "loader = importlib.util.module_from_spec(spec); spec.loader.exec_module(loader)\n"
        "loader.drop_script_dir()\n"
        "m = loader.start(os.getcwd())\n"
        "body = b''.join(m.application({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/'}, lambda *a: None))\n"
        "assert body == b'hello', body\n")


def make_sites(top: Path) -> tuple[Path, Path, Path]:
    venv = top / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # A plain venv, as a site has; it sees this checkout's shim (stdlib only) through a .pth file.
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    (site_packages / "wsgi_shim_checkout.pth").write_text(str(REPO) + "\n")
    shimmed = top / "shimmed"
    subprocess.run([sys.executable, "-m", "shim.cli", "install", str(shimmed), "--python", str(python)],
                   check=True, capture_output=True, cwd=REPO)
    (shimmed / "www-approot" / "app.py").write_text(APP)
    (shimmed / "www-approot" / "tmp" / "maint.txt").unlink()
    bare = top / "bare" / "www-approot"
    bare.mkdir(parents=True)
    (bare / "app.py").write_text(APP)
    (bare / "passenger_wsgi.py").write_text("from app import application\n")
    return python, shimmed / "www-approot", bare


# As in a venv that pip installed into: bytecode cached (pip compiles it at install time).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def start(python: Path, approot: Path) -> float:
    t = time.perf_counter()
    subprocess.run([str(python), "-c", LOAD, str(LOADER)], cwd=approot, check=True, stdin=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    rounds = 8 if parser.parse_args().quick else 40
    with tempfile.TemporaryDirectory(prefix="shim-bench-") as tmp:
        python, shimmed, bare = make_sites(Path(tmp))
        subprocess.run([str(python), "-m", "compileall", "-q", str(REPO / "shim")], check=True, env=ENV)
        start(python, shimmed), start(python, bare)  # warm the page cache and .pyc files
        shim_times, bare_times = [], []
        for _ in range(rounds):
            shim_times.append(start(python, shimmed))
            bare_times.append(start(python, bare))
        log = (shimmed / "logs" / "starts.jsonl").read_text().splitlines()
        assert all('"state": "app"' in line for line in log), log[-1]
    s, b = statistics.median(shim_times), statistics.median(bare_times)
    print(f"Process start + first request (median of {rounds} fresh processes, {os.cpu_count()} CPUs)")
    print(f"  bare passenger_wsgi.py          {b * 1000:7.1f} ms")
    print(f"  wsgi-shim get_app()             {s * 1000:7.1f} ms")
    print(f"  ratio shim / bare               {s / b:7.2f}   (added {(s - b) * 1000:.1f} ms per process start)")


if __name__ == "__main__":
    main()
