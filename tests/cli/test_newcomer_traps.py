"""What a newcomer's first deployment runs into (issue 18), at the real boundary: the CLI as a
subprocess run by the site's user, the site loaded the way Passenger loads it.

Code left in the app root, a deploy of the wrong directory, code edited after the process
started, release commands run while the old release serves, an error id copied in part."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.cli.test_deploy import app_source, body, current, deploy, source_dir
from tests.support.sites import load_like_passenger, make_site, update_config, write_file, wsgi_shim

pytestmark = pytest.mark.realserver


def test_code_in_the_app_root_is_named_and_never_served_by_a_deploy_of_the_wrong_directory():
    # As the quickstart once did: the app copied into the app root, then deploy --init.
    site = make_site("stale", app_source={"app.py": app_source("stale copy")})
    first = deploy(site, source_dir(site, "v1", {"app.py": app_source("v1")}), "--init")
    assert first.returncode == 0, first.stdout + first.stderr
    v1 = current(site)
    assert body(site) == "v1"

    checked = wsgi_shim("check", str(site.site))
    assert checked.returncode == 0, checked.stdout  # a warning: the site serves
    assert "[approot-code]" in checked.stdout and "app.py" in checked.stdout
    assert "passenger_wsgi.py," not in checked.stdout.split("[approot-code]", 1)[1].split("\n")[0]

    # The wrong directory: no app.py in the release. The stale app.py beside it must not pass.
    wrong = deploy(site, source_dir(site, "docs", {"README.txt": "not the app\n"}))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    out = wrong.stdout + wrong.stderr
    assert "[app-module-missing]" in out and "nothing was switched" in out
    assert current(site) == v1 and body(site) == "v1"

    # A package in the app root counts too, and moving the code out ends the warning.
    write_file(site.approot / "helpers/__init__.py", "")
    out = wsgi_shim("check", str(site.site)).stdout
    assert "helpers/" in out and "app.py" in out
    os.unlink(site.approot / "app.py")
    os.unlink(site.approot / "helpers/__init__.py")
    os.rmdir(site.approot / "helpers")
    assert "[approot-code]" not in wsgi_shim("check", str(site.site)).stdout


def test_a_site_served_from_the_app_root_is_not_warned_about_its_own_code():
    site = make_site("own")
    assert "[approot-code]" not in wsgi_shim("check", str(site.site)).stdout


def test_status_and_check_say_a_restart_is_due_after_an_edit():
    site = make_site("due")
    assert load_like_passenger(site).response.code == 200
    fresh = wsgi_shim("status", str(site.site))
    assert "due:" not in fresh.stdout and "[restart-due]" not in wsgi_shim("check", str(site.site)).stdout

    write_file(site.approot / "app.py", app_source("edited"))
    status = wsgi_shim("status", str(site.site))
    assert f"restart:     due: {site.approot}/app.py changed after the last start" in status.stdout
    checked = wsgi_shim("check", str(site.site))
    assert checked.returncode == 0 and "[restart-due]" in checked.stdout, checked.stdout
    assert "wsgi-shim restart" in checked.stdout
    assert json.loads(wsgi_shim("status", str(site.site), "--json").stdout)["restart_due"] == [
        f"{site.approot}/app.py"]

    # Restart requested: pending, no longer due; after a new start, neither.
    assert wsgi_shim("restart", str(site.site)).returncode == 0
    pending = wsgi_shim("status", str(site.site)).stdout
    assert "pending" in pending and "due:" not in pending
    assert load_like_passenger(site).response.body == "edited"
    assert "restart:" not in wsgi_shim("status", str(site.site)).stdout

    # config.toml counts too.
    update_config(site, {"environment": {"MODE": "x"}})
    assert f"due: {site.config_toml}" in wsgi_shim("status", str(site.site)).stdout


def test_release_commands_without_maint_say_the_old_release_serves_meanwhile():
    site = make_site("runnote")
    first = deploy(site, source_dir(site, "v1", {"app.py": app_source("v1")}), "--init")
    assert first.returncode == 0
    v1 = current(site)
    done = deploy(site, source_dir(site, "v2", {"app.py": app_source("v2")}), "--run", "true")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"visitors are served by release {v1} while these commands run" in done.stdout
    assert "--maint --url URL" in done.stdout
    # In maintenance already, visitors see the page: nothing to warn about.
    assert wsgi_shim("maint", "on", str(site.site)).returncode == 0
    quiet = deploy(site, source_dir(site, "v3", {"app.py": app_source("v3")}), "--run", "true")
    assert quiet.returncode == 0 and "visitors are served by" not in quiet.stdout


def _append_start(site, error_id: str) -> None:
    """A failed start's record as get_app() writes it (logs/starts.jsonl, one JSON line)."""
    path = site.approot / "logs" / "starts.jsonl"
    line = json.dumps({"time": "2026-01-01T00:00:00Z", "epoch": 1767225600.0, "pid": 1, "state": "error",
                       "problems": [{"code": "app-exception", "what": f"start {error_id}", "where": "x",
                                     "fix": "y", "severity": "error"}], "error_id": error_id})
    with open(path, "a") as f:
        f.write(line + "\n")


def test_logs_id_takes_a_unique_prefix_of_six_or_more():
    site = make_site("ids", app_source={"app.py": "raise RuntimeError('boom at import')\n"})
    page = load_like_passenger(site).response
    error_id = re.search(r'Error id: <code class="error-id">([0-9a-f]{10})</code>', page.body).group(1)

    for given in (error_id, error_id[:8], error_id[:6]):
        shown = wsgi_shim("logs", str(site.site), "--id", given)
        assert shown.returncode == 0 and "boom at import" in shown.stdout, (given, shown.stderr)
    short = wsgi_shim("logs", str(site.site), "--id", error_id[:5])
    assert short.returncode == 1 and "too short" in short.stderr and "at least its first 6" in short.stderr

    _append_start(site, "abcdef0001")
    _append_start(site, "abcdef0002")
    both = wsgi_shim("logs", str(site.site), "--id", "abcdef")
    assert both.returncode == 1
    assert "matches 2 error ids: abcdef0001, abcdef0002" in both.stderr
    one = wsgi_shim("logs", str(site.site), "--id", "abcdef0002")
    assert one.returncode == 0 and "start abcdef0002" in one.stdout
    missing = wsgi_shim("logs", str(site.site), "--id", "0123456789")
    assert missing.returncode == 1 and "No entry with error id" in missing.stderr


def test_the_examples_recipe_keeps_installs_config_and_no_code_in_the_app_root():
    """examples/README.md's steps: install, add the example's sections, deploy --init."""
    import shutil
    import tomllib

    import tempfile
    from pathlib import Path

    from tests.support.accounts import gid, uid
    from tests.support.realsites import own_venv_site
    from tests.support.sites import BASE, REPO, run_as_site

    (BASE / "sites").mkdir(mode=0o755, parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix="recipe-", dir=BASE / "sites"))
    parent.chmod(0o755)
    os.chown(parent, uid(), gid())
    site, venv = own_venv_site(parent, "hello.application")
    installed = tomllib.loads(site.config_toml.read_text())["passenger"]
    example = parent / "plain_wsgi"  # the user's clone of the example
    shutil.copytree(REPO / "examples" / "plain_wsgi", example)
    for path in (example, *example.iterdir()):
        os.chown(path, *(os.stat(parent)[4:6]))
    sections = {k: v for k, v in tomllib.loads((example / "config.toml").read_text()).items() if k != "passenger"}
    update_config(site, sections)
    shim = str(venv / "bin/wsgi-shim")
    done = run_as_site([shim, "deploy", str(site.site), str(example), "--init"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert tomllib.loads(site.config_toml.read_text())["passenger"] == installed  # install's, kept
    assert sorted(p.name for p in site.approot.glob("*.py")) == ["passenger_wsgi.py"]
    assert run_as_site([shim, "maint", "off", str(site.site)]).returncode == 0
    checked = run_as_site([shim, "check", str(site.site)])
    assert checked.returncode == 0 and "[approot-code]" not in checked.stdout, checked.stdout
    assert load_like_passenger(site, python=str(venv / "bin/python")).response.code == 200


DJANGO_SETTINGS = """\
import os
SECRET_KEY = "test-only-key-0123456789abcdef0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = [h for h in os.environ.get("HOSTS", "").split(",") if h]
INSTALLED_APPS = ["django.contrib.staticfiles"]
MIDDLEWARE = []
ROOT_URLCONF = "mysite.urls"
DATABASES = {}
STATIC_URL = os.environ.get("STATIC_URL_", "static/")
if os.environ.get("STATIC_ROOT_"):
    STATIC_ROOT = os.environ["STATIC_ROOT_"]
"""


def _django_site():
    site = make_site("dj", app="mysite.wsgi.application", app_source={
        "mysite/__init__.py": "", "mysite/urls.py": "urlpatterns = []\n", "mysite/settings.py": DJANGO_SETTINGS,
        "mysite/wsgi.py": "from django.core.wsgi import get_wsgi_application\n"
                          "application = get_wsgi_application()\n"})
    update_config(site, {"environment": {"DJANGO_SETTINGS_MODULE": "mysite.settings"}})
    return site


def _warnings(site, *args: str) -> str:
    checked = wsgi_shim("check", str(site.site), *args)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # warnings only: the site serves
    return checked.stdout


def test_check_warns_about_django_static_files_visitors_cannot_reach_and_foreign_hosts():
    site = _django_site()
    out = _warnings(site)
    assert "[django-static-unreachable] STATIC_ROOT is not set" in out
    assert "[django-allowed-hosts] ALLOWED_HOSTS is empty and DEBUG is off" in out

    static = site.docroot / "static"
    # Existing directories: [environment] values that name existing paths are not masked.
    write_file(site.approot / "staticfiles" / "keep", "")
    write_file(static / "keep", "")
    update_config(site, {"environment": {"STATIC_ROOT_": str(site.approot / "staticfiles"),
                                         "HOSTS": "www.example.org"}})
    out = _warnings(site, "--url", "https://www.example.org/")
    assert f"STATIC_ROOT is {site.approot}/staticfiles, outside the document root" in out
    assert f'STATIC_ROOT = "{site.docroot}/static"' in out  # the fix names the place
    assert "[django-allowed-hosts]" not in out

    update_config(site, {"environment": {"STATIC_ROOT_": str(static), "STATIC_URL_": "/assets/"}})
    out = _warnings(site, "--url", "https://other.example.org/")
    assert "but the files in STATIC_ROOT" in out and "served at /static/" in out  # (the value is masked)
    assert "does not hold other.example.org" in out

    update_config(site, {"environment": {"STATIC_URL_": "/static/", "HOSTS": ".example.org"}})
    out = _warnings(site, "--url", "https://other.example.org/")
    assert "[django-" not in out, out  # Django's own rules: ".example.org" holds its subdomains

    bad = wsgi_shim("check", str(site.site), "--url", "file:///etc/passwd")
    assert bad.returncode == 2 and "not an http:// or https:// URL" in bad.stderr
