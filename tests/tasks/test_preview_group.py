"""The preview of a site whose passenger_group is a project group its owner belongs to, but
not the owner's login group (the common case on shared hosting: `install --group myproject`),
run by that owner, not root: over HTTP, the app is served with the site's group, as Passenger
serves it, and `check` stays OK afterwards."""

from __future__ import annotations

import grp
import json
import os
import pwd

import pytest

from tests.support.accounts import OTHER_USER, PROJECT_GROUP, SITE_USER
from tests.support.sites import RUNUSER, VENV, make_site, update_config, wsgi_shim
from tests.tasks.conftest import preview

GROUP_APP = """\
import grp, json, os


def application(environ, start_response):
    body = json.dumps({"group": grp.getgrgid(os.getegid()).gr_name, "uid": os.getuid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def as_owner_with_login_group(*args: str) -> list[str]:
    """`wsgi-shim ARGS` as the site's owner in a login shell's state: its login group (shimsite),
    shimproj only as a supplementary group, and a PATH without the site's venv."""
    return [RUNUSER, "-u", SITE_USER, "--", "env", "-i", "PATH=/usr/bin:/bin", f"HOME=/home/{SITE_USER}",
            "LANG=C.UTF-8", str(VENV / "bin/wsgi-shim"), *args]


def login_group() -> str:
    return grp.getgrgid(pwd.getpwnam(SITE_USER).pw_gid).gr_name


@pytest.mark.realserver
def test_owner_previews_a_project_group_site_with_its_group_and_check_stays_ok(port, tmp_path):
    site = make_site("preview-group", {"app.py": GROUP_APP})
    assert login_group() != PROJECT_GROUP  # the situation of the issue: useradd -U gives a group of one's own
    assert wsgi_shim("check", str(site.site)).returncode == 0
    cmd = as_owner_with_login_group("serve", str(site.site), "--port", str(port))
    with preview(cmd, port, tmp_path / "serve.log", env={"PATH": "/usr/bin:/bin"}) as server:
        response = server.get()
        assert response.status == 200, response.body
        seen = json.loads(response.body)
        assert seen == {"group": PROJECT_GROUP, "uid": pwd.getpwnam(SITE_USER).pw_uid}
        assert f"with group {PROJECT_GROUP}" in server.output()
    checked = wsgi_shim("check", str(site.site))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "seen when the site last started" not in checked.stdout
    # No app process is left behind by the preview's stop (sg does not pass signals on).
    assert not [line for line in os.popen("ps -eo args").read().splitlines()
                if "wsgi-shim" not in line and str(site.approot) in line]


@pytest.mark.realserver
def test_a_group_the_owner_cannot_take_is_called_the_previews_limit_never_the_sites(port, tmp_path):
    site = make_site("preview-nogroup", {"app.py": GROUP_APP})
    other_group = grp.getgrgid(pwd.getpwnam(OTHER_USER).pw_gid).gr_name  # shimsite is no member
    update_config(site, {"passenger": {"passenger_group": other_group}})
    cmd = as_owner_with_login_group("serve", str(site.site), "--port", str(port))
    with preview(cmd, port, tmp_path / "serve.log", env={"PATH": "/usr/bin:/bin"}) as server:
        assert server.get().status == 500
        said = server.output()
    assert f"cannot run the app as passenger_group '{other_group}'" in said
    assert "keep config.toml as it is" in said
    status = wsgi_shim("status", str(site.site))
    assert "preview-identity" in status.stdout, status.stdout
    assert "a limit of the preview" in status.stdout
    assert "in the preview (wsgi-shim serve), not under Passenger" in status.stdout
    # Nothing advises a change that would break the real site.
    assert f'passenger_group = "{login_group()}"' not in status.stdout + said
    assert f'Keep passenger_group = \\"{other_group}\\"' in status.stdout or \
        f'Keep passenger_group = "{other_group}"' in status.stdout
    checked = wsgi_shim("check", str(site.site), "--json")
    codes = [p["code"] for p in json.loads(checked.stdout)["problems"]]
    assert "group-mismatch" not in codes and "preview-identity" not in codes, codes
