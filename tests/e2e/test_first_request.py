"""Real apps that import cleanly and fail at their first request, through real Apache +
Passenger under load (issue 17, item 6).

Radicale (a CalDAV server from PyPI) reads its configuration file at its first request, not at
import; flaskr (the Flask tutorial's blog, from Flask's sdist) answers its failures with Flask's
own 500 page, and Trac (an issue tracker from PyPI) a missing environment with its own, without
raising through WSGI. Each is deployed (as the site's non-root user, with
the site's own wsgi-shim command) with a mistake only a request shows:

- a release whose radicale.conf is missing, and a flaskr release whose migration was forgotten:
  `deploy --maint` refuses it before the switch, naming the cause with the real path, while
  client threads request the site: they get the app's pages (or the maintenance page), never a
  5xx, and the old release serves on;
- the live site broken in place (its radicale.conf renamed; flaskr's database moved away; Trac's
  TRAC_ENV misspelt in config.toml): `check` names the cause, `restart --wait` exits 1;
- a failure only production traffic shows (the check requests /auth/login, visitors /): the
  deploy rolls the release back at the first failing answer, visitors get at most a few 5xx.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.e2e.test_real_sites import FLASKR_INIT, current, new_parent, ok, tasks_file
from tests.support.accounts import PROJECT_GROUP, SITE_USER
from tests.support.apache import ApacheServer, poll
from tests.support.load import Load, LoadResult
from tests.support.realsites import (Visitor, example_config, flaskr_forgotten_migration, flaskr_post,
                                     flaskr_project, flaskr_register_and_login, flaskr_secret_config,
                                     own_venv_site, radicale_project, radicale_request, trac_project)
from tests.support.sites import run_as_site, update_config
from tests.tasks.conftest import inv_as_site, tasks_venv  # noqa: F401 (a fixture)

pytestmark = pytest.mark.realserver

CLIENTS = 4


class Shim:
    """The site's own `wsgi-shim` command, run as the site's user."""

    def __init__(self, site: Site, venv: Path):
        self.site, self.command = site, str(venv / "bin/wsgi-shim")

    def __call__(self, name: str, *args: str) -> subprocess.CompletedProcess:
        # `maint on|off SITE`: its action comes first; the other commands take SITE first.
        words = [args[0], str(self.site.site), *args[1:]] if name == "maint" else [str(self.site.site), *args]
        result = run_as_site([self.command, name, *words], timeout=900)
        print(f"$ wsgi-shim {name} {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def ok(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return ok(self(name, *args), f"wsgi-shim {name} {' '.join(args)}")


def inv(project: Path, *args: str) -> subprocess.CompletedProcess:
    """`inv ARGS` from PROJECT, as the site's user (its tasks.py names the site)."""
    result = inv_as_site(project, *args)
    print(f"$ inv {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def served(r) -> bool:
    return r.status == 200 and "x-wsgi-shim" not in r.headers


def app_site(parent: Path, app: str, apache: ApacheServer) -> tuple[Site, Shim, str]:
    site, venv = own_venv_site(parent, app)
    url = apache.serve(parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=venv / "bin/python")
    return site, Shim(site, venv), url


def server_errors(result: LoadResult, since: float = 0.0, until: float = float("inf")) -> list:
    """The 5xx visitors got between SINCE and UNTIL, except the maintenance page."""
    return [s for s in result.samples if since <= s.start <= until
            and (s.status >= 500 or s.status == 0) and s.kind != "maintenance"]


def wait_served(load: Load, timeout: float = 60) -> None:
    """Until the load's latest 20 responses are all the app's 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = load.result.samples[-20:]
        if len(last) == 20 and all(s.status == 200 and s.kind == "app" for s in last):
            return
        time.sleep(0.3)
    raise AssertionError(f"the app is not serving: {load.result.summary()}")


# ---- Radicale: its configuration file, read at the first request ---------------------------------

def test_radicale_whose_config_file_is_missing(apache: ApacheServer, site_venv: Path) -> None:
    parent = new_parent("radicale")
    site, shim, url = app_site(parent, "wsgi.application", apache)
    project = radicale_project(parent, site)
    update_config(site, example_config("radicale", site))
    web = url + "/.web/"
    shim.ok("deploy", str(project), "--init", "--maint", "--url", web)
    one = current(site)
    shim.ok("maint", "off")
    shim.ok("restart", "--wait", "60", "--url", web)
    poll(web, served, timeout=30)
    # A CalDAV client makes a calendar: Radicale's authentication and storage work.
    assert radicale_request(url, "MKCALENDAR", "/alice/calendar/") == 201

    # The owner renames radicale.conf; wsgi.py still names it. Radicale imports cleanly.
    os.rename(project / "radicale.conf", project / "radicale.ini")
    with Load(web, clients=CLIENTS, limit=600, keep_body=200) as load:
        wait_served(load)
        before = time.monotonic()
        refused = shim("deploy", str(project), "--maint", "--url", web, "--maint-wait", "30")
        wait_served(load)
    # The real path: the new release's radicale.conf, which is not there.
    issue17_deploy_refused(refused, site, one, "Failed to load config file",
                           rf"'{re.escape(str(site.site))}/releases/\d{{8}}T\d{{6}}Z/radicale\.conf'")
    assert not server_errors(load.result, before), load.result.summary()
    assert load.result.counts()[(200, "app")] > 0, load.result.summary()
    os.rename(project / "radicale.ini", project / "radicale.conf")

    # The live release broken in place: its radicale.conf renamed.
    live = site.site / "releases" / one
    os.rename(live / "radicale.conf", live / "radicale.ini")
    # The path the app tried, as wsgi.py made it: through `current`, the live release.
    issue17_check_names(shim("check"), "Failed to load config file", f"'{site.approot}/current/radicale.conf'")
    issue17_restart_wait_fails(shim, shim("restart", "--wait", "60", "--url", web), "Failed to load config file")
    os.rename(live / "radicale.ini", live / "radicale.conf")
    shim.ok("check")
    shim.ok("restart", "--wait", "60", "--url", web)
    assert radicale_request(url, "GET", "/alice/calendar/") == 200  # the calendar is still there


# ---- flaskr: Flask's own 500 page -----------------------------------------------------------------

def test_flaskr_whose_migration_was_forgotten(apache: ApacheServer, site_venv: Path) -> None:
    parent = new_parent("flaskr500")
    site, shim, url = app_site(parent, "wsgi.application", apache)
    project = flaskr_project(parent, site_owned=True)
    update_config(site, example_config("flaskr", site))
    flaskr_secret_config(site)
    shim.ok("deploy", str(project), "--init", "--maint", "--run", FLASKR_INIT, "--url", url + "/")
    one = current(site)
    shim.ok("maint", "off")
    shim.ok("restart", "--wait", "60", "--url", url + "/")
    alice = Visitor(url)
    flaskr_register_and_login(alice, "alice", "alice-password")
    flaskr_post(alice, "Before the pinned posts", "written through the create form")

    flaskr_forgotten_migration(project)
    with Load(url + "/", clients=CLIENTS, limit=900, keep_body=200) as load:
        wait_served(load)
        before = time.monotonic()
        # As every deploy of flaskr: maintenance on for the (guarded) release command.
        refused = shim("deploy", str(project), "--maint", "--run", FLASKR_INIT, "--url", url + "/",
                       "--maint-wait", "30")
        wait_served(load)
        issue17_deploy_refused(refused, site, one, "no such column: p.pinned",
                               rf"{re.escape(str(site.site))}/releases/\d{{8}}T\d{{6}}Z/flaskr/blog\.py")
        assert not server_errors(load.result, before), load.result.summary()
        # The maintenance page while the release command ran, lifted again over the old release.
        assert any(s.kind == "maintenance" for s in load.result.samples if s.start >= before)
        assert not site.maint_txt.exists()

        # The owner's check requests only the login page: only the visitors' / shows the failure.
        update_config(site, {"check": {"requests": ["/auth/login"]}})
        start = time.monotonic()
        undone = shim("deploy", str(project), "--wait", "60", "--url", url + "/auth/login")
        end = time.monotonic()
        wait_served(load)
        again = time.monotonic()
        issue17_rolled_back(undone, site, one)
        time.sleep(2)
    during, after_exit = server_errors(load.result, start, end), server_errors(load.result, end, again)
    print(load.result.summary(), f"; 5xx: {len(during)} while the deploy ran, {len(after_exit)} after it exited "
          "until the previous release served again")
    assert during, "the visitors' requests never reached the new release: the test proves nothing"
    assert all(s.status == 500 and b"Internal Server Error" in s.body for s in during + after_exit), during[:3]
    # Once the previous release serves again, nobody gets an error.
    assert not server_errors(load.result, again), load.result.summary()
    assert alice.get("/").text.count("Before the pinned posts") == 1
    update_config(site, {"check": {"requests": ["/", "/auth/login"]}})  # the owner's lesson

    # The live site broken in place: the database moved away (sqlite makes an empty one).
    db = site.site / "shared" / "instance" / "flaskr.sqlite"
    os.rename(db, db.with_suffix(".moved"))
    try:
        issue17_check_names(shim("check"), "no such table: post", "flaskr/blog.py")
        issue17_restart_wait_fails(shim, shim("restart", "--wait", "60", "--url", url + "/"), "no such table: post")
    finally:
        os.replace(db.with_suffix(".moved"), db)
    shim.ok("restart", "--wait", "60", "--url", url + "/")
    assert "Before the pinned posts" in alice.get("/").text


# ---- Trac: its environment path, opened at each request; its own 500 page ------------------------

TRAC_INIT = 'test -d "$TRAC_ENV" || trac-admin "$TRAC_ENV" initenv "My Project" sqlite:db/trac.db'


def test_trac_whose_environment_path_is_misspelt(apache: ApacheServer, site_venv: Path,
                                                 tasks_venv: Path) -> None:  # noqa: F811
    parent = new_parent("trac")
    site, shim, url = app_site(parent, "trac.web.main.dispatch_request", apache)
    project = trac_project(parent)
    tasks_file(project / "tasks.py", site, url + "/wiki")
    config = example_config("trac", site)
    update_config(site, config)
    shim.ok("deploy", str(project), "--init", "--maint", "--run", TRAC_INIT, "--url", url + "/")
    shim.ok("maint", "off")
    shim.ok("restart", "--wait", "60", "--url", url + "/")
    assert "My Project" in poll(url + "/wiki", served, timeout=30).body

    # The owner edits [environment] and misspells the path; Trac imports cleanly, and answers
    # every page with its own 500 page (no exception reaches WSGI).
    wrong = str(Path(config["environment"]["TRAC_ENV"]).with_name("tarc"))
    update_config(site, {"environment": {"TRAC_ENV": wrong}})
    with Load(url + "/wiki", clients=CLIENTS, limit=300, keep_body=400) as load:
        checked = shim("check")
        issue17_check_names(checked, f"No Trac environment found at {wrong}", "answered 500")
        issue17_restart_wait_fails(shim, shim("restart", "--wait", "60", "--url", url + "/wiki"),
                                   "the app rendered its own error page")
        # The same under inv, from the project, as the site's user.
        issue17_check_names(inv(project, "check"), f"No Trac environment found at {wrong}", "answered 500")
        issue17_restart_wait_fails(shim, inv(project, "restart", "--wait"),
                                   "the app rendered its own error page")
        update_config(site, {"environment": {"TRAC_ENV": config["environment"]["TRAC_ENV"]}})
        shim.ok("check")
        shim.ok("restart", "--wait", "60", "--url", url + "/wiki")
        wait_served(load)
    own = [s for s in load.result.samples if s.status == 500]
    assert own and all(b"Trac Error" in s.body for s in own), load.result.summary()
    assert "My Project" in poll(url + "/wiki", served, timeout=30).body


# ---- what issue 17 changes (items 1-3: the request before the switch, the watch, restart --wait)

def issue17_deploy_refused(result: subprocess.CompletedProcess, site: Site, live: str, cause: str,
                           where: str) -> None:
    """The request before the switch failed: nothing switched, the cause and where it is named
    (WHERE: a regular expression)."""
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "[request-failed]" in out and cause in out and re.search(where, out), out
    assert current(site) == live, out


def issue17_check_names(result: subprocess.CompletedProcess, cause: str, where: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "[request-failed]" in out and cause in out and where in out, out


def issue17_restart_wait_fails(shim: Shim, result: subprocess.CompletedProcess, cause: str) -> None:
    """restart --wait saw the new process fail: exit 1 and an error id, whose entry `logs --id`
    shows; CAUSE is in `logs --errors` (an app that renders its own 500 page logs the traceback
    itself, beside the entry)."""
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "failing" in out, out
    found = re.search(r"error id ([0-9a-f]{6,})", out)
    assert found, out
    entry = shim("logs", "--id", found.group(1))
    assert entry.returncode == 0 and found.group(1) in entry.stdout, entry.stdout + entry.stderr
    errors = shim("logs", "--errors", "--since", "10m")
    assert cause in errors.stdout, errors.stdout + errors.stderr


def issue17_rolled_back(result: subprocess.CompletedProcess, site: Site, live: str) -> None:
    """The watch after the switch saw a visitor's request fail: switched back, the error named."""
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert current(site) == live, out
    assert "failing after the switch" in out and re.search(r"error id [0-9a-f]{6,}", out), out
    assert f"current is back to {live}" in out, out
