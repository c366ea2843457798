"""SystemExit in a view or in the response body, through real Apache + Passenger (issue 19.5).

Before: the exception went past the request middleware into Passenger's loader, the process
exited, the visitor got Passenger's 502 "Incomplete response" and the app log had no entry.
Now it is caught like any other exception: our 500 page with an error id that `wsgi-shim logs
--id` finds, and the same process keeps serving. A KeyboardInterrupt is reported the same way,
then stops the process once the page is out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP, SITE_USER
from tests.support.apache import ApacheServer, Response, http_get, poll
from tests.support.sites import make_site, shared_venv, wsgi_shim

pytestmark = pytest.mark.realserver

APP = '''\
import os
import sys


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/exit":
        sys.exit("e2e exit in a view")
    if path == "/exit-body":
        def body():
            yield b""
            raise SystemExit(3)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()
    if path == "/interrupt":
        raise KeyboardInterrupt
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("pid=" + str(os.getpid())).encode()]
'''


@pytest.fixture(scope="module")
def site(apache: ApacheServer, site_venv: Path) -> tuple[Site, str]:
    site = make_site("e2e-exit", {"exitapp.py": APP}, app="exitapp.application")
    # Requests one after the other: Passenger keeps one process, so the same pid answering
    # again means the process lived.
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                       group=PROJECT_GROUP, python=shared_venv() / "bin" / "python")
    poll(url + "/", lambda r: r.status == 200 and r.body.startswith("pid="), timeout=30)
    return site, url


def error_id(r: Response) -> str:
    m = re.search(r'class="error-id">([0-9a-f]+)<', r.body)
    assert m, (r.status, r.body[:2000])
    return m.group(1)


@pytest.mark.parametrize(("path", "logged"), [("/exit", "SystemExit: e2e exit in a view"),
                                              ("/exit-body", "SystemExit: 3")])
def test_system_exit_is_an_error_page_and_the_process_lives(site, path: str, logged: str) -> None:
    site, url = site
    before = http_get(url + "/").body
    r = http_get(url + path)
    assert r.status == 500 and r.headers.get("x-wsgi-shim") == "app-error", (r.status, r.body[:500])
    assert "Incomplete response" not in r.body and "SystemExit" not in r.body
    eid = error_id(r)
    found = wsgi_shim("logs", str(site.site), "--id", eid)
    assert found.returncode == 0, found.stdout + found.stderr
    assert f"error id {eid}: GET {path} HTTP/1.1" in found.stdout and logged in found.stdout
    assert http_get(url + "/").body == before  # the same process answers


def test_keyboard_interrupt_gets_the_page_then_stops_the_process(site) -> None:
    """A KeyboardInterrupt is a request to stop (Ctrl-C; Passenger's loader ends its loop on
    it): the visitor still gets our page and the log its entry, then that process ends and
    Passenger starts another for the next request."""
    site, url = site
    before = http_get(url + "/").body
    r = http_get(url + "/interrupt")
    assert r.status == 500 and r.headers.get("x-wsgi-shim") == "app-error", (r.status, r.body[:500])
    found = wsgi_shim("logs", str(site.site), "--id", error_id(r))
    assert found.returncode == 0 and "KeyboardInterrupt" in found.stdout, found.stdout
    after = poll(url + "/", lambda r: r.status == 200 and r.body.startswith("pid="), timeout=30)
    assert after.body != before
