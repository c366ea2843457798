"""`wsgi-shim check` sends the app real WSGI requests after importing it ([check] requests):
apps that import cleanly and fail at their first request are caught (issue 17)."""

from __future__ import annotations

import json

import pytest

from tests.support.sites import HELLO_APP, make_site, update_config, wsgi_shim

pytestmark = pytest.mark.realserver

# Reads its configuration lazily, at the first request, from a path in [environment].
LAZY_CONFIG_APP = """\
import os

_settings = None


def settings():
    global _settings
    if _settings is None:
        with open(os.environ["APP_CONFIG"]) as f:
            _settings = f.read()
    return _settings


def application(environ, start_response):
    body = settings().encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""

# Catches its own errors and renders its own 500 page, logging the traceback as Flask does.
OWN_500_APP = """\
import logging, traceback

log = logging.getLogger("myapp")


def view(environ):
    return {"answer": 42}["question"]


def application(environ, start_response):
    try:
        body = str(view(environ)).encode()
        status = "200 OK"
    except Exception:
        log.exception("Exception on %s", environ["PATH_INFO"])
        print("printed by the app while failing")
        body = b"<html><head><style>p{}</style></head><body><h1>Oops</h1><p>Our own error page.</p></body></html>"
        status = "500 Internal Server Error"
    start_response(status, [("Content-Type", "text/html")])
    return [body]
"""

HOST_CHECK_APP = """\
def application(environ, start_response):
    if environ.get("HTTP_HOST") != "www.example.org":
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"Invalid HTTP_HOST header"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode()]
"""

SLOW_APP = """\
import time


def wait_for_the_database():
    time.sleep(600)


def application(environ, start_response):
    wait_for_the_database()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"late"]
"""


def test_an_app_that_reads_its_config_at_the_first_request_fails_check_naming_the_real_path():
    site = make_site("lazycfg", {"app.py": LAZY_CONFIG_APP},
                     config={"environment": {"APP_CONFIG": "/srv/nowhere/radicale.conf"}})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1, out.stdout
    assert "[request-failed]" in out.stdout
    assert "GET / (Host: localhost)" in out.stdout and "FileNotFoundError" in out.stdout
    assert "/srv/nowhere/radicale.conf" in out.stdout  # the one clue: a path is not a secret
    assert f"{site.approot}/app.py line 9" in out.stdout  # the app's own frame
    assert "would serve its app" not in out.stdout
    # --no-request imports only, and says what it left out
    skipped = wsgi_shim("check", str(site.site), "--no-request")
    assert skipped.returncode == 0, skipped.stdout
    assert "no request was sent (--no-request)" in skipped.stdout
    data = json.loads(wsgi_shim("check", str(site.site), "--json").stdout)
    assert data["ok"] is False and any(p["code"] == "request-failed" for p in data["problems"])
    assert data["requests"] and data["requests"][0].startswith("GET / (Host: localhost) -> no status")


def test_an_app_that_renders_its_own_500_page_fails_check_with_what_it_logged():
    site = make_site("own500", {"app.py": OWN_500_APP})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1, out.stdout
    assert "[request-failed]" in out.stdout and "answered 500 Internal Server Error" in out.stdout
    assert "Our own error page." in out.stdout and "Oops" in out.stdout  # the page's text, no tags
    assert "<style>" not in out.stdout
    assert "KeyError: 'question'" in out.stdout  # what the app logged, with its traceback
    assert "printed by the app while failing" in out.stdout


def test_4xx_and_3xx_answers_pass_and_each_request_is_listed():
    site = make_site("fourxx", {"app.py": HOST_CHECK_APP},
                     config={"check": {"host": "www.example.org", "requests": ["/", "HEAD /feed"]}})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 0, out.stdout
    assert "request: GET / (Host: www.example.org) -> 200 OK" in out.stdout
    assert "request: HEAD /feed (Host: www.example.org) -> 200 OK" in out.stdout


def test_a_host_check_refusing_the_sites_own_name_is_named():
    site = make_site("hostcheck", {"app.py": HOST_CHECK_APP})
    out = wsgi_shim("check", str(site.site))  # no [check] host: localhost is refused, a warning
    assert out.returncode == 0, out.stdout
    assert "warning: [request-host-refused]" in out.stdout and "[check] host" in out.stdout
    update_config(site, {"check": {"host": "example.org"}})
    out = wsgi_shim("check", str(site.site))  # the site's own name refused: every visitor gets 400
    assert out.returncode == 1, out.stdout
    assert "[request-host-refused]" in out.stdout and "refuses its own host name example.org" in out.stdout
    assert "ALLOWED_HOSTS" in out.stdout


def test_a_request_that_never_answers_is_reported_with_where_it_waits():
    site = make_site("slowreq", {"app.py": SLOW_APP}, config={"check": {"timeout": 2}})
    out = wsgi_shim("check", str(site.site), timeout=60)
    assert out.returncode == 1, out.stdout
    assert "[request-timeout]" in out.stdout and "no answer within 2 s" in out.stdout
    assert "wait_for_the_database" in out.stdout
    assert f"{site.approot}/app.py line 5" in out.stdout


def test_a_healthy_app_answers_and_check_says_ok():
    site = make_site("healthyreq", {"app.py": HELLO_APP})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 0, out.stdout
    assert "request: GET / (Host: localhost) -> 200 OK" in out.stdout
    assert "would serve its app" in out.stdout


def test_bad_check_settings_are_named_and_the_site_still_checks():
    site = make_site("badcheck", {"app.py": HELLO_APP},
                     config={"check": {"requests": ["POST /login", "/"]}})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 0, out.stdout
    assert "'POST /login' is not a GET or HEAD request" in out.stdout
    assert "request: GET / (Host: localhost) -> 200 OK" in out.stdout
    update_config(site, {"check": {"timout": 3}})
    out = wsgi_shim("check", str(site.site))
    assert "Unknown key 'timout' in [check]. Did you mean 'timeout'?" in out.stdout
