"""The owner's browser gets the debug-token cookie from an address it opens, HttpOnly and
SameSite=Strict, never from page script (issue 19.2), through real Apache + Passenger.

Before, docs/logs.md had the owner set `shim_debug_token` with `document.cookie = ...`: a cookie
every script on the site's origin can read (a maintenance page of someone else's, an XSS). Now
`wsgi-shim debug-url` (run as the site's user) prints SITE?shim-debug-login=CODE; the site answers
it with a redirect that sets the cookie HttpOnly, and CODE is not the token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.accounts import PROJECT_GROUP, SITE_USER
from tests.support.apache import ApacheServer, http_get, poll
from tests.support.sites import OWNER_TOKEN, make_site, opt_in_owner, shared_venv, write_file, wsgi_shim

pytestmark = pytest.mark.realserver

APP = '''\
def application(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise ValueError("e2e login boom")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]
'''


def login_url(site, url: str) -> str:
    out = wsgi_shim("debug-url", str(site.site), "--url", url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert OWNER_TOKEN not in out.stdout + out.stderr
    assert "HttpOnly" in out.stderr
    return out.stdout.strip()


def cookie_from(url: str, expect_location: str) -> str:
    r = http_get(url)
    assert r.status == 303 and r.headers["location"] == expect_location, (r.status, r.headers, r.body[:500])
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"shim_debug_token={OWNER_TOKEN};"), cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie, cookie
    return cookie.split(";")[0]


def test_the_printed_address_sets_an_httponly_cookie_for_request_and_start_pages(
        apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("debug-login", {"app.py": APP})
    opt_in_owner(site)
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                       group=PROJECT_GROUP, python=shared_venv() / "bin" / "python")
    poll(url + "/", lambda r: r.status == 200 and r.body == "fine", timeout=30)

    address = login_url(site, url + "/boom")
    cookie = cookie_from(address, "/boom")
    assert "Traceback" in http_get(url + "/boom", {"Cookie": cookie}).body
    assert "Traceback" not in http_get(url + "/boom").body
    forged = address[:-1] + ("0" if address[-1] != "0" else "1")
    r = http_get(forged)
    assert r.status == 500 and "set-cookie" not in r.headers and "Traceback" not in r.body

    # A failed start: the start-up page answers the address too.
    write_file(site.approot / "app.py", "raise RuntimeError('e2e login start failure')\n")
    assert wsgi_shim("restart", str(site.site)).returncode == 0
    poll(url + "/", lambda r: r.headers.get("x-wsgi-shim") == "error", timeout=30)
    cookie = cookie_from(login_url(site, url + "/"), "/")
    page = http_get(url + "/", {"Cookie": cookie})
    assert "e2e login start failure" in page.body and "[app-exception]" in page.body
    assert "e2e login start failure" not in http_get(url + "/").body


def test_debug_url_without_a_token_file_says_what_to_do() -> None:
    site = make_site("debug-login-none")
    out = wsgi_shim("debug-url", str(site.site), "--url", "https://example.org/")
    assert out.returncode == 1 and "debug_token_file" in out.stderr and "Traceback" not in out.stderr
    opt_in_owner(site)
    out = wsgi_shim("debug-url", str(site.site), "--url", "https://me:s3cretpw@example.org/")
    assert out.returncode == 1 and "s3cretpw" not in out.stderr + out.stdout
