"""Real outside apps end to end through real Apache + Passenger, under load (issue 14).

A Wagtail site made by `wagtail start` (the pinned Wagtail from PyPI) with the tasks under `inv`,
run as the site's user from its project directory; the Flask tutorial's flaskr from Flask's own
sdist with the tasks over `fab -H` against the real loopback sshd. Each goes from nothing to a
deployed site with the commands docs/real-sites.md shows: venv, install, check, the first
deploy (--maint, its migrations or init-db), maintenance off and restart --wait, a content
change deployed again, a rollback; all of it while client threads request the site without
pause. Visitors get only the app's 200 or the maintenance 503, and what a visitor wrote
through the app's own forms (an admin session and pages; a user and posts) is still there after
every deploy and after the rollback: the database lives in SITE/shared/, linked into each release.

A plain Django project from `django-admin startproject` goes the way docs/django.md shows, over
`fab -H`: the secret key in [secret_files], ALLOWED_HOSTS, STATIC_ROOT in the document root (the
admin's CSS served by Apache), the database in SITE/shared/, migrate and collectstatic as release
commands; and the mistakes that page lists, as `fab check` names them.

And the bytecode: a deploy compiles the release (and its venv) before the check, so the first
requests through Passenger create no .pyc file; with --no-compile they do.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP, SITE_USER, gid, uid
from tests.support.apache import ApacheServer, http_get, poll
from tests.support.load import Load, LoadResult
from tests.support.realsites import (PYTEST_PIN, Visitor, configure_django, configure_wagtail, django_project,
                                     example_config,
                                     flaskr_login, flaskr_post, flaskr_project, flaskr_register_and_login,
                                     flaskr_secret_config, git_commit, head_status, own_venv_site,
                                     pin_requirements, tools_venv, wagtail_add_page, wagtail_logged_in,
                                     wagtail_login, wagtail_project)
from tests.support.sites import BASE, SYSTEM_PYTHON, _checked, run_as_site, update_config, write_file
from tests.tasks.conftest import command_env, inv_as_site, sshd, tasks_venv  # noqa: F401 (fixtures)

pytestmark = pytest.mark.realserver

CLIENTS = 4
ADMIN_PASSWORD = "admin-pass-" + os.urandom(6).hex()
WAGTAIL_MIGRATE = "python manage.py migrate --noinput"
WAGTAIL_STATIC = "python manage.py collectstatic --noinput"
# flaskr's init-db drops its tables: only ever run it when there is no database yet.
FLASKR_INIT = "test -e instance/flaskr.sqlite || flask --app flaskr init-db"


def new_parent(name: str) -> Path:
    """An empty directory of the site's user to hold the site directory and the project."""
    (BASE / "sites").mkdir(mode=0o755, parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=BASE / "sites"))
    parent.chmod(0o755)
    os.chown(parent, uid(), gid())
    return parent


def ok(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{what} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def served(marker: str | None = None, absent: str | None = None):
    def test(r) -> bool:
        return r.status == 200 and "x-wsgi-shim" not in r.headers and (marker is None or marker in r.body) \
            and (absent is None or absent not in r.body)
    return test


def current(site: Site) -> str:
    return os.readlink(site.approot / "current").rsplit("/", 1)[-1]


def wait_for_body(load: Load, marker: bytes, present: bool = True, timeout: float = 60) -> None:
    """Until the load's latest responses are all the app's and do (or do not) show MARKER."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = [s for s in load.result.samples[-20:]]
        if len(last) == 20 and all(s.status == 200 and (marker in s.body) == present for s in last):
            return
        time.sleep(0.3)
    raise AssertionError(f"{marker!r} {'never' if present else 'still'} served: {load.result.summary()}")


def assert_visitors_saw_only_the_app_or_maintenance(result: LoadResult) -> None:
    print(result.summary())
    assert result.samples, "the load generator sent nothing"
    failures = result.failures()
    assert not failures, f"{len(failures)} responses were neither the app's 200 nor the maintenance 503, " \
                         f"e.g. {failures[:3]}: {result.summary()}"
    assert result.counts()[(503, "maintenance")] > 0, result.summary()
    assert result.counts()[(200, "app")] > 0, result.summary()


# ---- Wagtail, with the tasks under inv --------------------------------------------------------

def inv_ok(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return ok(inv_as_site(project, *args, **env), "inv " + " ".join(args))


def tasks_file(path: Path, site: Site, url: str | None = None) -> None:
    """The project's tasks.py (or fabfile.py): wsgi-shim's collection, configured for SITE;
    owned like the project (the site's user's, or this process's for fab's local side)."""
    settings = f'"site": "{site.site}"' + (f', "url": "{url}"' if url else "")
    text = f'from shim.tasks import ns\n\nns.configure({{"shim": {{{settings}}}}})\n'
    if path.parent.stat().st_uid == os.geteuid():
        path.write_text(text)
    else:
        write_file(path, text, 0o644)


def wagtail_superuser(site: Site) -> str:
    return (f'DJANGO_SUPERUSER_PASSWORD="$(cat {site.site}/secrets/admin-password)" python manage.py '
            "createsuperuser --noinput --username admin --email admin@example.org")


def wagtail_static_href(html: str) -> str:
    found = re.search(r'href="(/static/css/welcome_page\.[0-9a-f]+\.css)"', html)
    assert found, f"no hashed stylesheet link (collectstatic's manifest) in:\n{html[:3000]}"
    return found.group(1)


def test_wagtail_site_from_wagtail_start_deployed_with_inv_under_load(apache: ApacheServer, site_venv: Path,
                                                                      tasks_venv: Path) -> None:  # noqa: F811
    parent = new_parent("wagtail")
    project = wagtail_project(parent)
    site = Site(parent / "site")
    wheel = next((BASE / "wheels").glob("*.whl"))
    tasks_file(project / "tasks.py", site)
    inv_ok(project, "venv", "--python", SYSTEM_PYTHON)
    inv_ok(project, "install", "--wheel", str(wheel), "--app", "mysite.wsgi.application", "--group", PROJECT_GROUP)
    configure_wagtail(site)
    url = apache.serve(parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=site.site / "venv/bin/python")
    tasks_file(project / "tasks.py", site, url + "/")
    # Nothing deployed yet: check names the missing app; visitors get the maintenance page.
    before = inv_as_site(project, "check")
    assert before.returncode == 1 and "[app-module-missing]" in before.stdout, before.stdout + before.stderr
    poll(url + "/", lambda r: r.status == 503 and r.headers.get("x-wsgi-shim") == "maintenance", timeout=30)

    with Load(url + "/", clients=CLIENTS, limit=1500, keep_body=400) as load:
        # The trap: `wagtail start` wrote Django>=6.1, which needs Python 3.12 (Passenger 6.0.17
        # runs 3.11 at most). pip fails before the check, nothing is switched.
        first = ["deploy", "--init", "--maint", "--run", WAGTAIL_MIGRATE, "--run", WAGTAIL_STATIC]
        trap = inv_as_site(project, *first)
        assert trap.returncode == 1, trap.stdout + trap.stderr
        assert "pip install -r requirements.txt failed" in trap.stderr and "Django" in trap.stdout + trap.stderr
        assert not os.path.lexists(site.approot / "current")
        pin_requirements(project, "wagtail")

        # The first deploy also makes the admin account, its password read from a file of the
        # site's user (the same command works over fab -H, which passes no environment on).
        password_file = site.site / "secrets" / "admin-password"
        write_file(password_file, ADMIN_PASSWORD + "\n", 0o600)
        deployed = inv_ok(project, *first, "--run", wagtail_superuser(site))
        password_file.unlink()
        assert "Maintenance mode was already on" in deployed.stdout
        assert "Superuser created successfully" in deployed.stdout
        one = current(site)
        assert (site.site / "shared" / "db.sqlite3").is_file()
        assert (site.site / "releases" / one / "db.sqlite3").resolve() == site.site / "shared" / "db.sqlite3"
        inv_ok(project, "check")
        inv_ok(project, "maint", "off")
        inv_ok(project, "restart", "--wait")
        wait_for_body(load, b"<title>")
        home = poll(url + "/", served("Home"), timeout=30)
        # collectstatic wrote into the document root: Apache serves the hashed file itself.
        assert head_status(url + wagtail_static_href(home.body)) == 200

        me = Visitor(url)
        wagtail_login(me, "admin", ADMIN_PASSWORD)
        wagtail_add_page(me, "Written before the second deploy", "before-second")
        assert served("Written before the second deploy")(poll(url + "/before-second/", served(), timeout=30))

        # A content change, deployed again with maintenance and the migrations.
        base_html = project / "mysite" / "templates" / "base.html"
        text = base_html.read_text()
        assert '<meta charset="utf-8" />' in text
        write_file(base_html, text.replace('<meta charset="utf-8" />',
                                           '<meta charset="utf-8" /><meta name="release" content="two" />'), 0o644)
        second = inv_ok(project, "deploy", "--maint", "--run", WAGTAIL_MIGRATE, "--run", WAGTAIL_STATIC)
        assert "Maintenance mode on" in second.stdout and "Maintenance mode off" in second.stdout
        two = current(site)
        assert two != one
        wait_for_body(load, b'content="two"')
        assert wagtail_logged_in(me), "the admin session (a row in db.sqlite3) was lost by the deploy"
        assert served("Written before the second deploy")(http_get(url + "/before-second/"))
        wagtail_add_page(me, "Written before the rollback", "before-rollback")

        back = inv_ok(project, "rollback", "--wait")
        assert "Rolled back to" in back.stdout and current(site) == one
        wait_for_body(load, b'content="two"', present=False)
        assert wagtail_logged_in(me), "the admin session was lost by the rollback"
        for slug, title in (("before-second", "Written before the second deploy"),
                            ("before-rollback", "Written before the rollback")):
            assert served(title)(http_get(url + f"/{slug}/")), slug
        time.sleep(1)
    result = load.result
    assert_visitors_saw_only_the_app_or_maintenance(result)
    assert any(b'content="two"' in s.body for s in result.samples)
    assert b'content="two"' not in result.samples[-1].body


# ---- flaskr, with the tasks over fab -H ---------------------------------------------------------

def fab_ok(sshd, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:  # noqa: F811
    return ok(fab_run(sshd, project, *args, **env), "fab " + " ".join(args))


def fab_run(sshd, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:  # noqa: F811
    env = command_env(FABRIC_SHIM_KNOWN_HOSTS=str(sshd.known_hosts), **env)
    return sshd.fab("-H", sshd.host(SITE_USER), *args, cwd=project, env=env, timeout=900)


def test_flaskr_from_the_flask_sdist_deployed_with_fab_under_load(apache: ApacheServer, site_venv: Path,
                                                                   sshd) -> None:  # noqa: F811
    parent = new_parent("flaskr")
    project = flaskr_project(parent)  # this process's: the developer who runs fab
    # Its own tests first, as the tutorial runs them (pinned Flask, and pytest).
    tools = tools_venv("flaskr", (PYTEST_PIN,))
    here = {"cwd": project, "capture_output": True, "text": True, "stdin": subprocess.DEVNULL,
            "env": {"PATH": "/usr/bin:/bin", "HOME": str(parent), "LANG": "C.UTF-8"}}
    tests = subprocess.run([str(tools / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], **here)
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout + tests.stderr
    # ... and a local database, as the tutorial makes one: the project's instance/ (git ignores it).
    local = subprocess.run([str(tools / "bin/flask"), "--app", "flaskr", "init-db"], **here)
    assert local.returncode == 0 and (project / "instance" / "flaskr.sqlite").is_file(), local.stdout + local.stderr
    site = Site(parent / "site")
    tasks_file(project / "fabfile.py", site)
    fab_ok(sshd, project, "venv", "--python", SYSTEM_PYTHON)
    fab_ok(sshd, project, "install", "--app", "wsgi.application", "--group", PROJECT_GROUP)
    update_config(site, example_config("flaskr", site))
    flaskr_secret_config(site)
    url = apache.serve(parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=site.site / "venv/bin/python")
    tasks_file(project / "fabfile.py", site, url + "/")
    before = fab_run(sshd, project, "check")
    assert before.returncode == 1 and "[app-module-missing]" in before.stdout, before.stdout + before.stderr
    poll(url + "/", lambda r: r.status == 503 and r.headers.get("x-wsgi-shim") == "maintenance", timeout=30)

    with Load(url + "/", clients=CLIENTS, limit=900, keep_body=400) as load:
        first = fab_ok(sshd, project, "deploy", "--init", "--maint", "--run", FLASKR_INIT)
        assert "Initialized the database." in first.stdout
        one = current(site)
        assert (site.site / "shared" / "instance" / "flaskr.sqlite").is_file()
        assert "release's own instance" not in first.stdout + first.stderr  # the local one stayed home
        fab_ok(sshd, project, "check")
        fab_ok(sshd, project, "maint", "off")
        fab_ok(sshd, project, "restart", "--wait")
        wait_for_body(load, b"<title>Posts - Flaskr</title>")

        alice = Visitor(url)
        flaskr_register_and_login(alice, "alice", "alice-password")
        flaskr_post(alice, "Before the second deploy", "written through the create form")

        base_html = project / "flaskr" / "templates" / "base.html"
        base_html.write_text(base_html.read_text().replace(" - Flaskr</title>", " - Flaskr, release two</title>"))
        git_commit(project, "a new title")
        second = fab_ok(sshd, project, "deploy", "--maint", "--run", FLASKR_INIT)
        assert "Initialized the database." not in second.stdout  # the guard kept the data
        assert current(site) != one
        wait_for_body(load, b"Flaskr, release two")
        index = alice.get("/")
        # Still logged in (the session cookie is signed with instance/config.py's SECRET_KEY) ...
        assert "Log Out" in index.text and "alice" in index.text
        assert "Before the second deploy" in index.text  # ... and the post is still in the database
        flaskr_post(alice, "Before the rollback", "written after the second deploy")

        back = fab_ok(sshd, project, "rollback", "--wait")
        assert "Rolled back to" in back.stdout and current(site) == one
        wait_for_body(load, b"Flaskr, release two", present=False)
        bob = Visitor(url)
        flaskr_login(bob, "alice", "alice-password")  # the user row is there: a fresh login works
        index = bob.get("/")
        assert "Before the second deploy" in index.text and "Before the rollback" in index.text
        time.sleep(1)
    assert_visitors_saw_only_the_app_or_maintenance(load.result)
    assert any(b"Flaskr, release two" in s.body for s in load.result.samples)


# ---- a plain Django project, over fab -H (docs/django.md) ----------------------------------------

def django_admin_login(me: Visitor, password: str) -> None:
    page = me.submit("/admin/login/", {"username": "admin", "password": password})
    if urllib.parse.urlsplit(page.url).path != "/admin/" or "Site administration" not in page.text:
        raise AssertionError(f"Django admin login failed ({page.status} {page.url}):\n{page.text[:3000]}")


def set_environment(site: Site, **values: str) -> None:
    update_config(site, {"environment": values})


def test_django_startproject_deployed_with_fab(apache: ApacheServer, site_venv: Path, sshd) -> None:  # noqa: F811
    parent = new_parent("django")
    project = django_project(parent)  # this process's: the developer who runs fab
    site = Site(parent / "site")
    tasks_file(project / "fabfile.py", site)
    fab_ok(sshd, project, "venv", "--python", SYSTEM_PYTHON)
    fab_ok(sshd, project, "install", "--app", "mysite.wsgi.application", "--group", PROJECT_GROUP)
    configure_django(site)
    url = apache.serve(parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=site.site / "venv/bin/python")
    tasks_file(project / "fabfile.py", site, url + "/")

    # The first deploy: migrate and collectstatic from [deploy] run, and the admin's account.
    password_file = site.site / "secrets" / "admin-password"
    write_file(password_file, ADMIN_PASSWORD + "\n", 0o600)
    superuser = (f'DJANGO_SUPERUSER_PASSWORD="$(cat {password_file})" python manage.py createsuperuser '
                 "--noinput --username admin --email admin@example.org")
    first = fab_ok(sshd, project, "deploy", "--init", "--maint", "--run", "python manage.py migrate --noinput",
                   "--run", "python manage.py collectstatic --noinput", "--run", superuser)
    password_file.unlink()
    assert "Superuser created successfully" in first.stdout
    assert (site.site / "shared" / "db.sqlite3").is_file()
    assert (site.docroot / "static" / "admin" / "css" / "base.css").is_file()
    checked = fab_ok(sshd, project, "check")
    assert "[django-" not in checked.stdout and "[approot-code]" not in checked.stdout, checked.stdout
    fab_ok(sshd, project, "maint", "off")
    fab_ok(sshd, project, "restart", "--wait")

    # The admin through real Apache + Passenger, with its CSS served from the document root.
    login = poll(url + "/admin/login/", served("Django administration"), timeout=60)
    css = re.search(r'href="(/static/admin/css/[\w.-]+\.css)"', login.body)
    assert css, login.body[:3000]
    assert head_status(url + css.group(1)) == 200
    me = Visitor(url)
    django_admin_login(me, ADMIN_PASSWORD)

    # A second deploy runs [deploy] run; the database (the admin, the session) stays in shared/.
    (project / "mysite" / "urls.py").write_text((project / "mysite" / "urls.py").read_text()
                                                + "\nadmin.site.site_header = 'Release two'\n")
    git_commit(project, "release two")
    second = fab_ok(sshd, project, "deploy", "--maint")
    assert "Maintenance mode on" in second.stdout and "Maintenance mode off" in second.stdout
    poll(url + "/admin/login/", served("Release two"), timeout=60)
    assert "Release two" in me.get("/admin/").text  # still logged in: the session row is in shared/db.sqlite3

    # The mistakes docs/django.md lists, as `fab check` names them. A static root in the release
    # (startproject's BASE_DIR): a warning. A host list without the site's own host: a warning
    # read from the settings, and an error once check's request to that host (shim.url) is
    # answered 400, as every visitor's would be.
    release = site.site / "releases" / current(site)
    set_environment(site, DJANGO_STATIC_ROOT=str(release / "staticfiles"), DJANGO_ALLOWED_HOSTS="www.example.org")
    warned = fab_run(sshd, project, "check")
    assert warned.returncode == 1, warned.stdout + warned.stderr
    assert "[django-static-unreachable]" in warned.stdout and "outside the document root" in warned.stdout
    assert "[django-allowed-hosts]" in warned.stdout and "does not hold 127.0.0.1" in warned.stdout
    assert "[request-host-refused]" in warned.stdout and "refuses its own host name 127.0.0.1" in warned.stdout
    assert "[restart-due]" in warned.stdout  # config.toml changed after the running process started
    # A misspelt settings module: a config value, named at its line, not a package to install.
    set_environment(site, DJANGO_STATIC_ROOT=str(site.docroot / "static"), DJANGO_ALLOWED_HOSTS="127.0.0.1",
                    DJANGO_SETTINGS_MODULE="mysite.setings")
    typo = fab_run(sshd, project, "check")
    assert typo.returncode == 1, typo.stdout + typo.stderr
    assert "[env-module-missing]" in typo.stdout and "Did you mean 'mysite.settings'?" in typo.stdout
    assert f"{site.config_toml} line " in typo.stdout and ", [environment] DJANGO_SETTINGS_MODULE" in typo.stdout
    assert "pip install" not in typo.stdout and "app-dependency-missing" not in typo.stdout
    set_environment(site, DJANGO_SETTINGS_MODULE="mysite.settings")
    fab_ok(sshd, project, "check")


# ---- bytecode ---------------------------------------------------------------------------------

def bytecode(release: Path) -> dict[str, int]:
    """Every .pyc in the release and its venv, with its mtime."""
    found = {}
    for root, _dirs, files in os.walk(release):
        for name in files:
            if name.endswith(".pyc"):
                path = os.path.join(root, name)
                found[path] = os.stat(path).st_mtime_ns
    return found


def visit_wagtail(url: str) -> None:
    """What the first visitors after a deploy request: pages, the admin, search, a 404."""
    for path, status in (("/", 200), ("/admin/login/", 200), ("/search/?query=home", 200), ("/no-such/", 404)):
        got = http_get(url + path)
        assert got.status == status and "x-wsgi-shim" not in got.headers, (path, got.status, got.body[:1000])


def deploy_and_visit(site: Site, venv: Path, project: Path, url: str, *flags: str) -> list[str]:
    """Deploy PROJECT (FLAGS), then restart --wait and visit; the .pyc files the visits made."""
    shim = str(venv / "bin/wsgi-shim")
    _checked(run_as_site([shim, "deploy", str(site.site), str(project), *flags]))
    release = site.site / "releases" / current(site)
    before = bytecode(release)
    assert before, f"no .pyc at all in {release}"
    _checked(run_as_site([shim, "restart", str(site.site), "--wait", "60", "--url", url + "/"]))
    visit_wagtail(url)
    after = bytecode(release)
    return sorted(p for p, mtime in after.items() if before.get(p) != mtime)


def test_the_first_requests_after_a_deploy_compile_nothing(apache: ApacheServer, site_venv: Path) -> None:
    parent = new_parent("pyc")
    project = wagtail_project(parent)
    pin_requirements(project, "wagtail")
    site, venv = own_venv_site(parent, "mysite.wsgi.application")
    configure_wagtail(site)
    update_config(site, {"wsgi": {"chdir": "current"}})
    url = apache.serve(parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=venv / "bin/python")
    site.maint_txt.unlink()
    # The first deploy: pip installs Wagtail into the release's venv, migrate and collectstatic
    # run (importing most of the project, as any release command does).
    assert deploy_and_visit(site, venv, project, url, "--run", WAGTAIL_MIGRATE, "--run", WAGTAIL_STATIC) == []
    # A code change without release commands: the check imports the app, the compile step the rest.
    assert deploy_and_visit(site, venv, project, url) == []
    # Without the compile step (and without the check's request, which would compile what it
    # reaches) the same visits compile what the check's import did not reach (the URLconf, the
    # views): the test can fail.
    made = deploy_and_visit(site, venv, project, url, "--no-compile", "--no-request")
    assert any("/mysite/__pycache__/urls." in p for p in made), made
    assert all("/.venv/" not in p for p in made), made  # the venv is a copy of one compiled before
