"""The app log and the start records: only the site's own files, and private ones (issue 19.1).

Sites made by `wsgi-shim install` as the real site user, passenger_wsgi.py loaded as Passenger
loads it, the CLI run as a subprocess.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.support.accounts import OTHER_USER, uid
from tests.support.sites import load_like_passenger, make_site, wsgi_shim

pytestmark = pytest.mark.realserver


def test_a_log_others_can_read_is_said_and_made_private():
    site = make_site("log-exposed")
    load_like_passenger(site)  # creates logs/app.log and logs/starts.jsonl
    log, starts = site.approot / "logs" / "app.log", site.approot / "logs" / "starts.jsonl"
    for path in (log, starts):
        path.chmod(0o644)
    out = wsgi_shim("check", str(site.site))
    assert "[log-exposed]" in out.stdout and str(log) in out.stdout and str(starts) in out.stdout, out.stdout
    assert load_like_passenger(site).response.body == "hello from the app"  # a warning: it serves
    last = json.loads(starts.read_text().splitlines()[-1])
    assert "log-exposed" in [p["code"] for p in last["problems"]]
    assert "[log-exposed]" in log.read_text()
    for path in (log, starts):
        assert path.stat().st_mode & 0o007 == 0, oct(path.stat().st_mode)
    assert "[log-exposed]" not in wsgi_shim("check", str(site.site)).stdout


def test_start_records_in_another_users_file_are_not_written():
    site = make_site("starts-foreign")
    starts = site.approot / "logs" / "starts.jsonl"
    starts.parent.mkdir(exist_ok=True)
    os.chown(starts.parent, uid(), -1)
    starts.write_text("")
    starts.chmod(0o666)
    os.chown(starts, uid(OTHER_USER), -1)
    page = load_like_passenger(site, [{"path": "/", "remote_addr": "203.0.113.9"}]).response
    assert page.code == 500 and page.kind == "error"
    assert starts.read_text() == ""
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1 and "[owner-foreign]" in out.stdout and str(starts) in out.stdout


def test_the_release_current_points_to_gets_the_same_rules():
    """chdir = "current/..." is followed through the link: a release directory others can write
    (or another user's) blocks the start, by its own path."""
    site = make_site("current-writable", config={"logging": {"debug_addresses": ["127.0.0.1"]},
                                                  "wsgi": {"chdir": "current"}})
    release = site.site / "releases" / "r1"
    release.mkdir(parents=True)
    (release / "app.py").write_text((site.approot / "app.py").read_text())
    for path in (release.parent, release, release / "app.py"):
        os.chown(path, uid(), -1)
    os.symlink(release, site.approot / "current")
    os.lchown(site.approot / "current", uid(), -1)
    assert load_like_passenger(site).response.body == "hello from the app"  # a sane release serves
    release.chmod(0o777)
    page = load_like_passenger(site).response
    assert page.code == 500 and "[path-writable]" in page.body and str(release) in page.body, page.body
    release.chmod(0o755)
    os.chown(release, uid(OTHER_USER), -1)
    page = load_like_passenger(site).response
    assert "[owner-foreign]" in page.body and f"{release} is owned by {OTHER_USER}" in page.body, page.body
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1 and "[owner-foreign]" in out.stdout and str(release) in out.stdout


def test_a_log_and_start_records_owned_by_root_are_not_written_and_it_is_said():
    site = make_site("log-root")
    load_like_passenger(site)
    log, starts = site.approot / "logs" / "app.log", site.approot / "logs" / "starts.jsonl"
    for path in (log, starts):
        path.write_text("")
        os.chown(path, 0, 0)
        path.chmod(0o644)
    assert load_like_passenger(site).response.body == "hello from the app"
    assert log.read_text() == "" and starts.read_text() == ""
    out = wsgi_shim("check", str(site.site))
    assert out.stdout.count("[log-not-own]") == 2 and "is owned by root" in out.stdout, out.stdout
