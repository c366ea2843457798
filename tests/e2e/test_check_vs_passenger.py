"""`wsgi-shim check` must agree with real Passenger about file modes.

For each variant a site is installed by `wsgi-shim install`, some modes are changed, and then
real Apache + Passenger decide: is the app served, and is a restart (here: `maint off`, which
touches tmp/restart.txt) noticed? `check` must exit 0 exactly when both happen.
The modes follow tests/e2e/test_passenger_permissions.py: private app root and tmp/ are fine,
a DocumentRoot without the search bit for the web server is not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP, SITE_USER
from tests.support.apache import ApacheServer, http_get, poll
from tests.support.sites import HELLO_APP, make_site, wsgi_shim

pytestmark = pytest.mark.realserver


def _modes(site: Site) -> dict[str, Path]:
    return {"site": site.site, "approot": site.approot, "tmp": site.tmp,
            "restart": site.restart_txt, "maint": site.maint_txt,
            "startup": site.passenger_wsgi, "config": site.config_toml, "docroot": site.docroot}


VARIANTS = {
    "as-installed": {},
    "private-tmp": {"tmp": 0o700, "restart": 0o600, "maint": 0o600},
    "private-approot": {"approot": 0o700},
    "approot-711": {"approot": 0o711},
    "private-files": {"startup": 0o600, "config": 0o600},
    "all-private": {"approot": 0o700, "tmp": 0o700, "restart": 0o600, "maint": 0o600,
                    "startup": 0o600, "config": 0o600, "site": 0o711, "docroot": 0o711},
    "docroot-711": {"docroot": 0o711},
    "docroot-closed": {"docroot": 0o750},
    "site-dir-closed": {"site": 0o750},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_check_agrees_with_passenger(apache: ApacheServer, site_venv: Path, variant: str) -> None:
    site = make_site(f"e2e-modes-{variant}", {"app.py": HELLO_APP}, maint=True)
    paths = _modes(site)
    for key, mode in VARIANTS[variant].items():
        os.chmod(paths[key], mode)
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                       group=PROJECT_GROUP, python=site_venv / "bin" / "python")

    # The first request starts a process (maintenance page); `maint off` touches restart.txt,
    # so the app page appears only if Passenger notices the restart.
    served = http_get(url + "/").headers.get("x-wsgi-shim") == "maintenance"
    off = wsgi_shim("maint", "off", str(site.site))
    assert off.returncode == 0, off.stderr
    if served:
        try:
            poll(url + "/", lambda r: r.status == 200 and "hello from the app" in r.body,
                 timeout=10)
        except AssertionError:
            served = False

    check = wsgi_shim("check", str(site.site))
    verdict = "serves and restarts" if served else "does NOT serve or restart"
    assert (check.returncode == 0) == served, (
        f"Passenger {verdict} with {VARIANTS[variant] or 'the installed modes'}, but "
        f"`wsgi-shim check` exits {check.returncode}:\n{check.stdout}\n{check.stderr}")
