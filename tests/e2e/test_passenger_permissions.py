"""Which file modes real Apache + Passenger need: pins the findings `wsgi-shim check` relies on.

Findings (Apache 2.4 + Passenger 6.0.17, PassengerUser = site owner, Passenger core as root):
- The app root, passenger_wsgi.py, tmp/, tmp/restart.txt and the venv are only ever touched by
  the app user and by the Passenger core (root). 0700 / 0600 everywhere work, restarts included:
  a thread of the Passenger core (uid 0) stats restart.txt (seen with strace; pinned below with a
  tmp/ only root can enter), so restart.txt needs no group or world bit at all.
- The DocumentRoot and every directory above it must be searchable by the web server user
  (www-data; o+x unless group-owned by it). Apache walks the DocumentRoot before Passenger sees
  the request: a docroot without o+x turns every app URL into 404 (static files 403), a site
  directory without o+x above it turns everything into 403 (AH00035 in the error log).
  Read (o+r) is not needed: 0711 serves both the app and known static files.

These sites are written by hand (a raw passenger_wsgi.py, a bare venv) so that the modes
under test are exactly the ones set here, whatever `wsgi-shim install` chooses.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from pathlib import Path

import pytest

from tests.e2e.rawsite import GROUP, USER, make_raw_site, serve_raw, touch_restart
from tests.support.apache import ApacheServer, http_get, poll

pytestmark = pytest.mark.realserver

def test_private_modes_serve_and_restart(apache: ApacheServer, e2e_dir: Path) -> None:
    top = make_raw_site(e2e_dir / "raw", "private-modes")
    restart_txt = top / "www-approot" / "tmp" / "restart.txt"
    assert restart_txt.stat().st_mode & 0o777 == 0o600
    url = serve_raw(apache, top)

    assert (top / "venv").stat().st_mode & 0o777 == 0o700
    first = poll(url + "/", lambda r: r.status == 200, timeout=30)
    uid, gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid
    assert f"uid={uid} gid={gid} prefix={top / 'venv'}" in first.body, first.body
    assert http_get(url + "/static.txt").body == "static file\n"

    # Restart noticed although only root and the owner can see tmp/ and restart.txt.
    touch_restart(restart_txt)
    after = poll(url + "/", lambda r: r.status == 200 and r.body != first.body, timeout=15)
    assert after.body.split()[0] != first.body.split()[0]  # a new pid


def test_restart_txt_is_watched_by_root(apache: ApacheServer, e2e_dir: Path) -> None:
    """Who stats restart.txt: with tmp/ owned by root and mode 0700 neither www-data nor the app
    user can see it, yet the restart is noticed, so it is the Passenger core, running as root."""
    top = make_raw_site(e2e_dir / "raw", "root-only-tmp")
    tmp = top / "www-approot" / "tmp"
    os.chown(tmp, 0, 0)
    os.chown(tmp / "restart.txt", 0, 0)
    url = serve_raw(apache, top)
    first = poll(url + "/", lambda r: r.status == 200, timeout=30)
    # A restart requested while Passenger is still settling the first spawn can be swallowed
    # (seen in CI, as in FACTS.md): touch again, as `deploy --maint` does, a few times at most.
    for attempt in range(3):
        while int(time.time()) <= int((tmp / "restart.txt").stat().st_mtime):
            time.sleep(0.05)
        (tmp / "restart.txt").touch()
        try:
            after = poll(url + "/", lambda r: r.status == 200 and r.body != first.body, timeout=10)
            break
        except AssertionError:
            if attempt == 2:
                raise
    assert after.body.split()[0] != first.body.split()[0]  # a new pid


def test_docroot_needs_search_bit_for_web_server(apache: ApacheServer, e2e_dir: Path) -> None:
    top = make_raw_site(e2e_dir / "raw", "docroot-closed", docroot=0o700)
    url = serve_raw(apache, top)
    offset = apache.error_log_size()
    r = http_get(url + "/")
    # Apache never hands the request to Passenger: the app is not reached at all.
    assert r.status == 404, (r.status, r.body[:300])
    assert http_get(url + "/static.txt").status == 403
    assert "search permissions are missing" in apache.error_log_after(offset)


def test_site_dir_above_docroot_needs_search_bit(apache: ApacheServer, e2e_dir: Path) -> None:
    top = make_raw_site(e2e_dir / "raw", "site-closed", site=0o750, docroot=0o755)
    url = serve_raw(apache, top)
    assert http_get(url + "/").status == 403
    assert http_get(url + "/static.txt").status == 403
