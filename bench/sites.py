"""The three sites every benchmark compares, served by one private real Apache + Passenger.

    bare  -- passenger_wsgi.py is `from app import application`: the app alone
    ours  -- made by this checkout's `wsgi-shim install` (config.toml, every check, the app log,
             the middleware), in the test suite's site venv (built from this checkout's wheel)
    v010  -- made by wsgi-shim 0.1.0's own `install` (PyPI's `wsgi-shim`, module wsgi_shim), in a
             venv of its own

All three serve the same one-line app (app.py) as the same non-root user and group, from the same
Python (Debian's /usr/bin/python3). Needs root (users, Apache, Passenger); see tests/support.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.accounts import PROJECT_GROUP, SITE_USER, ensure_accounts, gid, uid
from tests.support.sites import SYSTEM_PYTHON, make_site, run_as_site, shared_venv, update_config, write_file

REPO = Path(__file__).resolve().parents[1]
# Short (Passenger's socket paths live under it) and world-searchable (Apache and the app reach it).
BASE = Path("/srv/wsgi-shim-bench") / hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
V010 = "wsgi-shim==0.1.0"
BODY = "hello from the app"
# /pid tells which process answered (bench/passenger.py's restart timing); the same one
# comparison per request for every variant.
APP = f"""\
import os


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    if environ.get("PATH_INFO") == "/pid":
        return [str(os.getpid()).encode()]
    return [b"{BODY}"]
"""
VARIANTS = ("bare", "ours", "v010")


@dataclass
class BenchSite:
    name: str
    approot: Path
    docroot: Path
    python: Path


def _mkdir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid(), gid())
    path.chmod(mode)
    return path


def _checked(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def v010_venv() -> Path:
    """A venv with wsgi-shim 0.1.0 from PyPI, owned by the site's user (made once per checkout)."""
    venv = BASE / "venv-0.1.0"
    if not (venv / ".ok").exists():
        shutil.rmtree(venv, ignore_errors=True)
        _mkdir(BASE)
        _checked(run_as_site([SYSTEM_PYTHON, "-m", "venv", str(venv)]))
        _checked(run_as_site([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", V010]))
        (venv / ".ok").touch()
    return venv


def bare_site(python: Path) -> BenchSite:
    top = _mkdir(BASE / "bare")
    approot, docroot = _mkdir(top / "www-approot", 0o750), _mkdir(top / "www-docroot")
    _mkdir(approot / "tmp", 0o750)
    write_file(approot / "app.py", APP)
    write_file(approot / "passenger_wsgi.py", "from app import application  # noqa: F401\n")
    write_file(approot / "tmp" / "restart.txt", "")
    return BenchSite("bare", approot, docroot, python)


def ours_site(name: str = "ours", config: dict | None = None) -> BenchSite:
    venv = shared_venv()
    site = make_site(f"bench-{name}", {"app.py": APP}, config=config)
    return BenchSite(name, site.approot, site.docroot, venv / "bin/python")


def ours_off_site() -> BenchSite:
    """Ours with the request-time diagnostics off ([logging] catch_errors = false)."""
    return ours_site("ours-off", {"logging": {"catch_errors": False}})


def v010_site(venv: Path) -> BenchSite:
    """Installed by 0.1.0's own CLI as the site's user, then pointed at app.py, maintenance off."""
    top = BASE / "v010"
    shutil.rmtree(top, ignore_errors=True)
    _mkdir(top)
    _checked(run_as_site([str(venv / "bin/python"), "-m", "wsgi_shim", "install", str(top)]))
    approot = top / "www-approot"
    write_file(approot / "app.py", APP)
    text = (approot / "config.toml").read_text()
    text = text.replace('app = "wsgi_shim.hello_world.app_hello_world"', 'app = "app.application"\nchdir = "."')
    text = text.replace(f'passenger_group = "{SITE_USER}"', f'passenger_group = "{PROJECT_GROUP}"')
    write_file(approot / "config.toml", text, 0o600)
    (approot / "tmp" / "maint.txt").unlink()
    return BenchSite("v010", approot, top / "www-docroot", venv / "bin/python")


def loader_copy() -> Path:
    """shim/ops/passenger_loader.py where the site's user can read it (a checkout may not be)."""
    target = BASE / "passenger_loader.py"
    _mkdir(BASE)
    shutil.copy(REPO / "shim" / "ops" / "passenger_loader.py", target)
    target.chmod(0o644)
    return target


def make_all() -> dict[str, BenchSite]:
    """The three sites, fresh each run (0.1.0's venv and the shared site venv are reused)."""
    ensure_accounts()
    BASE.parent.mkdir(mode=0o755, exist_ok=True)  # root's; BASE itself is the site user's
    _mkdir(BASE)
    ours = ours_site()
    return {"bare": bare_site(ours.python), "ours": ours, "v010": v010_site(v010_venv())}


__all__ = ["BASE", "BODY", "BenchSite", "VARIANTS", "make_all", "update_config"]
