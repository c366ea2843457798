"""wsgi-shim end to end: real Apache + Passenger over HTTP, the CLI run as the site's user.

A site owned by `shimsite` (project group `shimproj`) goes through its life:
install -> maintenance page -> maint off + restart -> the app -> a broken module -> our error
page (not Passenger's) -> fixed + restart -> the app again, with `wsgi-shim status --url` and
`restart --wait` checked against what Passenger really serves. Also: a config.toml typo and an
Apache PassengerGroup that differs from config.toml show our page; the snippet `install
--apache` prints works verbatim in a VirtualHost; the examples serve their own pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP, SITE_USER, gid, uid
from tests.support.apache import ApacheServer, Response, http_get, poll
from tests.support.sites import (
    BASE,
    HELLO_APP,
    make_site,
    opt_in_owner,
    shared_venv,
    write_file,
    wsgi_shim,
)

pytestmark = pytest.mark.realserver

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PASSENGER_GENERIC = "We're sorry, but something went wrong"

HELLO = '''\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from the e2e app"]
'''
# Same module, broken at import time on line 3 (a different size from HELLO, so Python's
# mtime+size bytecode check cannot mistake it for the cached good version).
BROKEN = '''\
import os

raise RuntimeError("e2e: broken at import time, value=" + os.sep)
'''


def shim_ok(*args: str) -> subprocess.CompletedProcess[str]:
    """`wsgi-shim ARGS` from the shared venv, run as the site's user; must succeed."""
    r = wsgi_shim(*args)
    assert r.returncode == 0, f"wsgi-shim {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def serve(apache: ApacheServer, site: Site) -> str:
    # make_site puts each site at BASE/sites/NAME-XXXX/site: the parent names it uniquely.
    return apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                        group=PROJECT_GROUP, python=shared_venv() / "bin" / "python")


def is_app(marker: str):
    def check(r: Response) -> bool:
        return r.status == 200 and "x-wsgi-shim" not in r.headers and marker in r.body
    return check


def shim_page(kind: str):
    return lambda r: r.headers.get("x-wsgi-shim") == kind


def http_status(site: Site, url: str) -> tuple[int, dict]:
    """`wsgi-shim status SITE --url URL --json`: its exit code and what it reports."""
    r = wsgi_shim("status", str(site.site), "--url", url, "--json")
    return r.returncode, json.loads(r.stdout)


def test_site_lifecycle_through_passenger(apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("e2e-life", {"hello.py": HELLO}, app="hello.application", maint=True)
    owner = opt_in_owner(site)
    url = serve(apache, site)
    module = site.approot / "hello.py"
    write_file(site.docroot / "robots.txt", "User-agent: *\n", mode=0o644)

    # Right after install: tmp/maint.txt exists, so visitors get the maintenance page.
    assert site.maint_txt.exists()
    r = http_get(url + "/")
    assert r.status == 503, (r.status, r.headers, r.body[:500])
    assert r.headers.get("x-wsgi-shim") == "maintenance"
    assert r.headers.get("retry-after", "").isdigit()
    assert PASSENGER_GENERIC not in r.body
    # Files in the DocumentRoot never reach the app: Apache serves them even in maintenance.
    assert http_get(url + "/robots.txt").status == 200
    code, status = http_status(site, url + "/")
    assert (code, status["http"]["serving"], status["maintenance"]) == (0, "maintenance", True)

    # Go live: `restart --wait --url` returns once the new process has recorded its start.
    shim_ok("maint", "off", str(site.site), "--no-restart")
    r = shim_ok("restart", str(site.site), "--wait", "20", "--url", url + "/")
    assert "serving the app" in r.stdout, r.stdout
    poll(url + "/", is_app("hello from the e2e app"), timeout=20)
    code, status = http_status(site, url + "/")
    assert (code, status["http"]["serving"], status["last_start"]["state"]) == (0, "app", "app")
    assert status["last_start"]["user"] == SITE_USER
    assert status["last_start"]["group"] == PROJECT_GROUP

    # A module that raises at import time: our error page, with the exception and file/line
    # for the owner (opted in by the debug token), only an error id for a visitor.
    write_file(module, BROKEN)
    shim_ok("restart", str(site.site))
    r = poll(url + "/", shim_page("error"), timeout=20, headers=owner)
    assert r.status == 500
    assert PASSENGER_GENERIC not in r.body
    assert "RuntimeError" in r.body and "e2e: broken at import time" in r.body
    assert f"{module} line 3" in r.body, r.body
    visitor = http_get(url + "/")
    assert visitor.status == 500 and visitor.headers.get("x-wsgi-shim") == "error"
    assert PASSENGER_GENERIC not in visitor.body
    assert 'class="error-id">' in visitor.body
    for detail in ("RuntimeError", "e2e: broken", str(module), SITE_USER, "Traceback"):
        assert detail not in visitor.body, detail
    code, status = http_status(site, url + "/")
    assert (code, status["http"]["serving"], status["last_start"]["state"]) == (1, "error", "error")

    # Fixed and restarted: the app again.
    write_file(module, HELLO)
    shim_ok("restart", str(site.site))
    poll(url + "/", is_app("hello from the e2e app"), timeout=20)


def test_config_mistake_shown_on_our_page(apache: ApacheServer, site_venv: Path) -> None:
    """A typo in config.toml: the visitor-facing page names it; Passenger's page never shows."""
    site = make_site("e2e-config", {"hello.py": HELLO}, app="hello.application")
    owner = opt_in_owner(site)
    text = site.config_toml.read_text().replace("[wsgi]", "[wsgi]\nchdirr = \".\"", 1)
    write_file(site.config_toml, text, mode=site.config_toml.stat().st_mode & 0o777)
    url = serve(apache, site)
    r = poll(url + "/", shim_page("error"), timeout=20, headers=owner)
    assert r.status == 500
    assert PASSENGER_GENERIC not in r.body
    assert "chdirr" in r.body
    assert "chdirr" not in http_get(url + "/").body  # a visitor sees the plain page


def test_apache_group_differs_from_config(apache: ApacheServer, site_venv: Path) -> None:
    """Only a real Passenger runs the app as Apache's PassengerGroup: config.toml says otherwise."""
    site = make_site("e2e-group", {"app.py": HELLO_APP})
    owner = opt_in_owner(site)
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                       group=SITE_USER,  # the user's private group, not the project group
                       python=site_venv / "bin" / "python")
    r = poll(url + "/", shim_page("error"), timeout=20, headers=owner)
    assert "[group-mismatch]" in r.body and "PassengerGroup" in r.body, r.body
    assert PASSENGER_GENERIC not in r.body


def test_install_apache_snippet_works_verbatim(apache: ApacheServer, site_venv: Path) -> None:
    """What `install --apache` prints for the sysadmins, pasted into a real VirtualHost."""
    (BASE / "sites").mkdir(mode=0o755, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix="e2e-snippet-", dir=BASE / "sites"))
    parent.chmod(0o755)
    os.chown(parent, uid(), gid())  # the site user creates SITE inside it
    site = Site(parent / "site")
    r = shim_ok("install", str(site.site), "--group", PROJECT_GROUP, "--app", "app.application",
                "--python", str(site_venv / "bin" / "python"), "--apache")
    snippet = r.stdout[r.stdout.index("# Apache + Passenger settings"):]
    assert "PassengerUser" in snippet and str(site.approot) in snippet
    write_file(site.approot / "app.py", HELLO_APP)

    url = apache.add_vhost(parent.name, snippet)
    apache.apply()
    assert http_get(url + "/").headers.get("x-wsgi-shim") == "maintenance"
    shim_ok("maint", "off", str(site.site))
    poll(url + "/", is_app("hello from the app"), timeout=20)


def example_files(name: str) -> tuple[dict[str, str], dict]:
    """An example's code (relative path -> text) and the config sections it asks for."""
    root = EXAMPLES / name
    files = {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != "config.toml" and "__pycache__" not in p.parts}
    return files, tomllib.loads((root / "config.toml").read_text())


@pytest.mark.parametrize(("example", "marker"), [
    ("plain_wsgi", "plain_wsgi example"),
    ("flask_site", "Hello from Flask"),
    ("django_site", "Hello from Django"),
])
def test_example_served_by_passenger(apache: ApacheServer, site_venv: Path, example: str,
                                     marker: str) -> None:
    files, config = example_files(example)
    site = make_site(f"e2e-{example.replace('_', '-')}", files, config, maint=True,
                     app=config["wsgi"]["app"])
    url = serve(apache, site)
    shim_ok("maint", "off", str(site.site))
    shim_ok("restart", str(site.site))
    r = poll(url + "/", is_app(marker), timeout=30)
    assert PASSENGER_GENERIC not in r.body
    if example != "plain_wsgi":
        health = http_get(url + "/health")
        assert health.status == 200 and '"ok"' in health.body


def test_restart_wait_with_production_stat_throttle(e2e_dir: Path, site_venv: Path) -> None:
    """Passenger's default PassengerStatThrottleRate (10 s) delays noticing restart.txt;
    `restart --wait --url` must keep asking until the new process has started."""
    site = make_site("e2e-throttle", {"app.py": HELLO_APP})
    server = ApacheServer(e2e_dir / "prod", stat_throttle_rate=None)
    url = server.serve("throttle", site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=site_venv / "bin" / "python")
    try:
        assert "PassengerStatThrottleRate" not in server.conf.read_text()
        first = poll(url + "/", is_app("hello from the app"), timeout=20)
        assert first.status == 200
        r = shim_ok("restart", str(site.site), "--wait", "30", "--url", url + "/")
        assert "serving the app" in r.stdout, r.stdout  # within its own --wait bound
    finally:
        server.stop()


def test_passenger_python_without_shim(apache: ApacheServer, site_venv: Path) -> None:
    """Apache's PassengerPython names an interpreter that lacks wsgi-shim (a common slip: the
    system python3 instead of the site venv's). The generated passenger_wsgi.py says so itself."""
    site = make_site("e2e-nopkg", {"app.py": HELLO_APP})
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                       group=PROJECT_GROUP, python="/usr/bin/python3")
    r = http_get(url + "/")
    assert PASSENGER_GENERIC not in r.body
    assert "could not start" in r.body and "/usr/bin/python3" not in r.body  # details: owner only
    out = wsgi_shim("status", str(site.site)).stdout
    assert "/usr/bin/python3" in out and "[shim-not-installed]" in out
