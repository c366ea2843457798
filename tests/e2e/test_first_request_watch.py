"""A site is healthy when it answers (issue 17), through real Apache + Passenger under load:
the request before the switch, the deploy that backs out at the first failing answer, restart
--wait and status --url that read the answers, the app's own 500 pages logged, and a start that
never finishes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.test_deploy_load import CLIENTS, live_site, version
from tests.e2e.test_passenger import serve, shim_ok
from tests.support.apache import ApacheServer, http_get, poll
from tests.support.load import Load
from tests.support.sites import make_site, write_file, wsgi_shim

pytestmark = pytest.mark.realserver

# Imports cleanly; every request reads a config file the environment names (missing in v2).
LAZY = """\
import os


def application(environ, start_response):
    with open(os.environ.get("NOTES_CONFIG", "/nonexistent/notes.conf")) as f:
        f.read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"v2"]
"""

# Fine on / (what the check requests); its /report page fails, as only production traffic shows.
REPORT_FAILS = """\
def application(environ, start_response):
    if environ["PATH_INFO"] == "/report":
        raise LookupError("no report for this month")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"v2"]
"""

OWN_500 = """\
def application(environ, start_response):
    start_response("500 Internal Server Error", [("Content-Type", "text/html")])
    return [b"<h1>Sorry</h1><p>our own page</p>"]
"""


def test_a_release_failing_its_first_request_is_refused_before_the_switch_under_load(
        apache: ApacheServer, site_venv: Path) -> None:
    site, url = live_site(apache, "first-maint")
    with Load(url, clients=CLIENTS, limit=120) as load:
        time.sleep(1)
        r = wsgi_shim("deploy", str(site.site), str(version(site, "v2", LAZY)), "--maint", "--url", url,
                      "--run", "python -c 'print(\"migrating\")'")
        time.sleep(2)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "[request-failed]" in r.stdout + r.stderr and "FileNotFoundError" in r.stdout + r.stderr
    assert "nothing was switched" in r.stderr and "release commands had run" in r.stderr
    result = load.result
    print(result.summary())
    assert result.samples and not result.failures(), result.summary()  # no visitor got a 5xx
    assert set(result.bodies()) == {b"v1"}  # the old release served on
    assert not site.maint_txt.exists()


def release_names(site) -> list[str]:
    return json.loads(wsgi_shim("releases", str(site.site), "--json").stdout)["releases"]


def test_a_failure_only_production_traffic_shows_is_rolled_back_at_once(
        apache: ApacheServer, site_venv: Path) -> None:
    site, url = live_site(apache, "first-prod")
    shim_ok("deploy", str(site.site), str(version(site, "v1b")), "--wait", "30", "--url", url)
    report = url + "report"
    with Load(report, clients=2, limit=120) as load:  # production traffic: some visitors want /report
        time.sleep(1)
        started = time.monotonic()
        r = wsgi_shim("deploy", str(site.site), str(version(site, "v2", REPORT_FAILS)), "--wait", "60",
                      "--url", url)
        took = time.monotonic() - started
        time.sleep(2)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "is failing after the switch" in out and "LookupError: no report for this month" in out
    assert "error id" in out and "current is back to" in out
    assert "answers again" in out  # it looked whether the previous release answers before it exited
    assert took < 60, out  # the first failure ended the wait
    assert is_served(url, "v1b")  # the previous release serves again
    releases = wsgi_shim("releases", str(site.site)).stdout
    assert "undone" in releases, releases
    print(load.result.summary())
    # The undone release never counts toward --keep and is pruned first: with 4 releases and
    # --keep 3 the oldest real release stays.
    before = release_names(site)
    undone = [r["name"] for r in before if r["undone"]]
    assert len(before) == 3 and len(undone) == 1
    r = shim_ok("deploy", str(site.site), str(version(site, "v3")), "--keep", "3", "--wait", "30", "--url", url)
    after = [r["name"] for r in release_names(site)]
    assert undone[0] not in after and before[0]["name"] in after and len(after) == 3, (before, after)
    assert f"Removed old release {undone[0]}" in r.stdout


def test_no_rollback_keeps_the_failing_release(apache: ApacheServer, site_venv: Path) -> None:
    site, url = live_site(apache, "first-keep")
    with Load(url + "report", clients=2, limit=90):
        time.sleep(1)
        r = wsgi_shim("deploy", str(site.site), str(version(site, "v2", REPORT_FAILS)), "--wait", "60",
                      "--url", url, "--no-rollback")
    assert r.returncode == 1 and "--no-rollback: the new release stays live" in r.stderr, r.stdout + r.stderr
    assert is_served(url, "v2")


def is_served(url: str, body: str) -> bool:
    try:
        poll(url, lambda resp: resp.status == 200 and body in resp.body, timeout=30)
        return True
    except AssertionError:
        return False


def test_restart_wait_and_status_url_exit_1_when_the_live_app_fails_in_place(
        apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("first-inplace")
    url = serve(apache, site) + "/"
    poll(url, lambda resp: resp.status == 200, timeout=30)
    shim_ok("restart", str(site.site), "--wait", "30", "--url", url)
    write_file(site.approot / "app.py", OWN_500)  # the app renders its own 500 page
    r = wsgi_shim("restart", str(site.site), "--wait", "30", "--url", url)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "serving the app" in r.stdout + r.stderr and "but it is failing" in r.stdout + r.stderr
    assert "answers 500" in r.stdout + r.stderr and "error id" in r.stdout + r.stderr
    # the app's own 500 page is unchanged for the visitor, and logged for the owner
    resp = http_get(url)
    assert resp.status == 500 and "our own page" in resp.body and "x-wsgi-shim" not in resp.headers
    errors = wsgi_shim("logs", str(site.site), "--errors").stdout
    assert "the app answered 500 Internal Server Error itself" in errors, errors
    s = wsgi_shim("status", str(site.site), "--url", url)
    assert s.returncode == 1 and "failing:" in s.stdout and "answers 500" in s.stdout, s.stdout
    # a URL nobody answers is no healthy site either
    refused = wsgi_shim("status", str(site.site), "--url", "http://127.0.0.1:9/", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["http"]["error"]


def test_a_site_that_answers_400_to_its_own_host_fails_restart_wait(apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("first-host", {"app.py": """\
def application(environ, start_response):
    start_response("400 Bad Request", [("Content-Type", "text/plain")])
    return [b"Invalid HTTP_HOST header"]
"""})
    url = serve(apache, site) + "/"
    r = wsgi_shim("restart", str(site.site), "--wait", "30", "--url", url)
    assert r.returncode == 1 and "answers 400 Bad Request" in r.stdout + r.stderr
    assert "ALLOWED_HOSTS" in r.stdout + r.stderr


def test_an_import_that_never_finishes_is_seen_importing_with_where_it_waits(
        apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("first-stuck", {"app.py": """\
import time


def connect_to_the_database():
    time.sleep(3600)  # no timeout


connect_to_the_database()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"never"]
"""})
    url = serve(apache, site) + "/"
    try:
        http_get(url, timeout=2)
    except OSError:
        pass  # the request waits for the start: it is what makes Passenger start it
    deadline = time.monotonic() + 60
    log = ""
    while time.monotonic() < deadline and "connect_to_the_database" not in log:
        time.sleep(2)
        log = wsgi_shim("logs", str(site.site)).stdout
    assert "has been importing the app for" in log and "connect_to_the_database" in log, log
    s = wsgi_shim("status", str(site.site))
    assert s.returncode == 1 and "has been importing the app since" in s.stdout, s.stdout


# The web server's clock 2 minutes behind the access host's: every record the app process writes
# carries its own (wrong) time. Which start is new must not depend on it.
SKEWED_STARTUP = """\
import time
_real_time = time.time
time.time = lambda: _real_time() - 120
import shim
application = shim.get_app()
"""


def test_restart_wait_does_not_compare_the_two_machines_clocks(apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("first-clock")
    write_file(site.passenger_wsgi, SKEWED_STARTUP, 0o640)
    url = serve(apache, site) + "/"
    poll(url, lambda resp: resp.status == 200, timeout=30)
    r = wsgi_shim("restart", str(site.site), "--wait", "30", "--url", url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "restarted:" in r.stdout and "serving the app" in r.stdout
    assert "before this restart" not in r.stdout + r.stderr
