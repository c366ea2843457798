"""Deploys and rollbacks through real Apache + Passenger: `current` is a symbolic link into
SITE/releases, and after each switch Passenger's new process must serve the new release."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_passenger import is_app, serve, shim_ok
from tests.support.apache import ApacheServer, http_get, poll
from tests.support.sites import make_site, write_file, wsgi_shim

pytestmark = pytest.mark.realserver


def version(site, name: str, body: str) -> Path:
    src = site.site.parent / name
    write_file(src / "app.py", "def application(environ, start_response):\n"
                               "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                               f"    return [b'{body}']\n")
    return src


def test_deploy_switch_refuse_and_roll_back_through_passenger(apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("e2e-deploy")
    url = serve(apache, site) + "/"
    poll(url, is_app("hello from the app"), timeout=20)

    r = shim_ok("deploy", str(site.site), str(version(site, "v1", "release one")), "--init",
                "--wait", "30", "--url", url)
    assert "restarted:" in r.stdout and "serving the app" in r.stdout, r.stdout
    poll(url, is_app("release one"), timeout=20)

    r = shim_ok("deploy", str(site.site), str(version(site, "v2", "release two")), "--maint",
                "--wait", "30", "--url", url)
    assert "serving the app" in r.stdout, r.stdout
    poll(url, is_app("release two"), timeout=20)

    broken = site.site.parent / "v3"
    write_file(broken / "app.py", "import no_such_module_in_release_three\n")
    r = wsgi_shim("deploy", str(site.site), str(broken), "--wait", "30", "--url", url)
    assert r.returncode == 1 and "no_such_module_in_release_three" in r.stderr
    # Even a restart now (any new process) still serves release two: current never moved.
    shim_ok("restart", str(site.site), "--wait", "30", "--url", url)
    assert is_app("release two")(http_get(url))

    r = shim_ok("rollback", str(site.site), "--wait", "30", "--url", url)
    assert "serving the app" in r.stdout, r.stdout
    poll(url, is_app("release one"), timeout=20)
