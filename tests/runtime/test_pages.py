"""The pages a failed or paused site serves: who sees what, and pages that never fail to render.

Sites are real (made by `wsgi-shim install` as the site's user) and loaded the way Passenger
loads passenger_wsgi.py; the owner opts in as the docs say (debug token header, debug_addresses);
an anonymous visitor sends nothing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from shim.runtime import pages
from shim.runtime.problems import Problem
from tests.support.accounts import PROJECT_GROUP, SITE_USER
from tests.support.sites import (
    OWNER_TOKEN,
    VENV,
    load_like_passenger,
    make_site,
    opt_in_owner,
    update_config,
    write_file,
    wsgi_shim,
)

VISITOR = {"path": "/", "remote_addr": "203.0.113.9"}
BROKEN_APP = ("import os\n\nSETTING = 'x'\n\n\ndef helper():\n    return 1\n\n\n"
              "raise RuntimeError('database settings missing')\n")  # line 10


def body_of(page) -> str:
    return page.body.split("<body>", 1)[1]


def error_id(page) -> str:
    m = re.search(r'class="error-id">([0-9a-f]{10})<', page.body)
    assert m, page.body
    return m.group(1)


def assert_plain(page, *absent: str) -> None:
    assert page.code == 500 and page.kind == "error", page
    assert "This site could not start" in page.body
    error_id(page)
    assert re.search(r"\d{1,2} [A-Z][a-z]+ \d{4}, \d\d:\d\d UTC", page.body), page.body
    body = body_of(page)
    for detail in ("How to fix", "Traceback", "[app-", "[config-", SITE_USER, PROJECT_GROUP,
                   "/srv/", str(VENV), "pid", *absent):
        assert detail not in body, (detail, body)


@pytest.mark.realserver
def test_start_up_details_for_the_opted_in_owner_only():
    """Issue 9.1: a visitor sees that the site could not start, an error id and the time; the
    owner (debug token header, or an address in debug_addresses) sees every detail."""
    site = make_site("optin", app_source={"app.py": BROKEN_APP})
    header = opt_in_owner(site)
    update_config(site, {"logging": {"debug_addresses": ["192.0.2.0/24"]}})
    loaded = load_like_passenger(site, [
        VISITOR,
        {"path": "/", "remote_addr": "203.0.113.9", "headers": header},
        {"path": "/", "remote_addr": "192.0.2.77"},
        {"path": "/", "remote_addr": "203.0.113.9", "headers": {"Cookie": f"shim_debug_token={OWNER_TOKEN}"}},
        {"path": "/", "remote_addr": "203.0.113.9", "headers": {"X-Shim-Debug-Token": "wrong-token-0123456789"}},
        {"path": "/", "method": "HEAD", "remote_addr": "203.0.113.9", "headers": header},
    ])
    visitor, by_token, by_address, by_cookie, wrong, head = loaded.responses
    assert_plain(visitor, "database settings missing", "RuntimeError", str(site.approot))
    assert_plain(wrong, "database settings missing")
    for owner in (by_token, by_address, by_cookie):
        assert owner.code == 500 and owner.kind == "error"
        assert "[app-exception]" in owner.body and "database settings missing" in owner.body
        assert "Traceback" in owner.body and f"<td>user</td><td>{SITE_USER}</td>" in owner.body
        assert f"{site.approot}/app.py line 10" in owner.body
        assert OWNER_TOKEN not in owner.body
    assert head.body == "" and head.code == 500
    # One start, one error id, on both pages.
    assert error_id(visitor) == error_id(by_token)


@pytest.mark.realserver
def test_owner_page_shows_the_source_lines_around_the_failing_line():
    site = make_site("source", app_source={"app.py": BROKEN_APP})
    header = opt_in_owner(site)
    page = load_like_passenger(site, [{"path": "/", "headers": header}]).response
    block = re.search(r'<pre class="source">(.*?)</pre>', page.body, re.S)
    assert block, page.body
    lines = re.findall(r"<span( class=\"hit\")?>\s*(\d+)  (.*?)</span>", block.group(1))
    numbers = [int(n) for _, n, _ in lines]
    assert numbers == list(range(5, 11)), numbers  # five lines before the failing one, up to EOF
    hit = [(n, text) for mark, n, text in lines if mark]
    assert hit == [("10", "raise RuntimeError(&#x27;database settings missing&#x27;)")]


@pytest.mark.realserver
def test_unreadable_config_keeps_every_page_plain_and_status_finds_the_error_by_id():
    """No config.toml to read: no opt-in is known. `status` and `logs --id` show everything."""
    site = make_site("noconf")
    header = opt_in_owner(site)
    write_file(site.config_toml, site.config_toml.read_text() + "\n[passenger\n", 0o600)
    loaded = load_like_passenger(site, [{"path": "/", "headers": header},
                                        {"path": "/", "remote_addr": "127.0.0.1"}])
    for page in loaded.responses:
        assert_plain(page)
    eid = error_id(loaded.responses[0])
    status = wsgi_shim("status", str(site.site))
    assert "[config-syntax]" in status.stdout and f"error id {eid}" in status.stdout, status.stdout
    record = json.loads(wsgi_shim("status", str(site.site), "--json").stdout)["last_start"]
    assert record["error_id"] == eid and record["problems"][0]["code"] == "config-syntax"
    logs = wsgi_shim("logs", str(site.site), "--id", eid)
    assert logs.returncode == 0, logs.stderr
    assert "[config-syntax]" in logs.stdout and eid in logs.stdout
    assert "[config-syntax]" in wsgi_shim("check", str(site.site)).stdout


@pytest.mark.realserver
def test_logs_id_finds_a_start_error_even_with_the_app_log_off():
    site = make_site("nolog", app_source={"app.py": BROKEN_APP}, config={"logging": {"enabled": False}})
    eid = error_id(load_like_passenger(site, [VISITOR]).response)
    logs = wsgi_shim("logs", str(site.site), "--id", eid)
    assert logs.returncode == 0, logs.stderr
    assert f"error id {eid}" in logs.stdout and "[app-exception]" in logs.stdout
    assert wsgi_shim("logs", str(site.site), "--id", "0000000000").returncode == 1


@pytest.mark.realserver
def test_a_site_may_show_details_to_everyone():
    site = make_site("public", app_source={"app.py": BROKEN_APP},
                     config={"logging": {"details_for_everyone": True}})
    page = load_like_passenger(site, [VISITOR]).response
    assert "[app-exception]" in page.body and "database settings missing" in page.body


NON_UTF8 = b"caf\xe9-\xff"


def _move_to_undecodable_path(site):
    """Rename the site's parent directory to a name that is not valid UTF-8 (Linux allows any
    bytes); the site's config.toml names no absolute path that would break by it."""
    from shim.runtime.layout import Site

    update_config(site, remove=[("passenger", "passenger_app_root")])
    parent = bytes(site.site.parent)
    target = parent + b"-" + NON_UTF8
    os.rename(parent, target)
    return Site(Path(os.fsdecode(target)) / "site")


@pytest.mark.realserver
def test_an_undecodable_app_root_still_gets_our_pages():
    """Issue 9.6: paths that are not UTF-8 never make get_app raise, on the plain page, the
    owner's page and the opted-in request error page."""
    owner_config = {"logging": {"debug_addresses": ["127.0.0.1"]}}  # the token file would move
    failing = make_site("bytes", app_source={"app.py": BROKEN_APP}, config=owner_config)
    failing = _move_to_undecodable_path(failing)
    loaded = load_like_passenger(failing, [VISITOR, {"path": "/"}])
    assert loaded.loader_error is None, loaded.loader_error  # Passenger's generic page
    visitor, owner = loaded.responses
    assert_plain(visitor)
    assert "[app-exception]" in owner.body and "database settings missing" in owner.body
    assert "caf\\xe9-\\xff" in owner.body, owner.body  # the undecodable bytes, shown as escapes


@pytest.mark.realserver
def test_an_undecodable_app_root_still_gets_the_opted_in_traceback_page():
    owner_config = {"logging": {"debug_addresses": ["127.0.0.1"]}}
    view_fails = make_site("bytes-req", config=owner_config, app_source={"app.py": (
        "def application(environ, start_response):\n    raise ValueError('view failed')\n")})
    view_fails = _move_to_undecodable_path(view_fails)
    loaded = load_like_passenger(view_fails, [VISITOR, {"path": "/"}])
    assert loaded.loader_error is None, loaded.loader_error
    visitor, owner = loaded.responses
    assert visitor.code == 500 and visitor.kind == "app-error" and "Traceback" not in visitor.body
    assert owner.code == 500 and "Traceback" in owner.body and "ValueError: view failed" in owner.body
    assert "caf\\xe9-\\xff" in owner.body, owner.body


# -- rendering, in process ------------------------------------------------------------------------

def test_every_page_has_a_viewport_and_the_one_stylesheet():
    plain = pages.error_page([Problem("x", "w", "where", "fix")], {"user": "u"}, "0123456789")
    rendered = [plain.body, plain.full, pages.request_error_page("0123456789"),
                pages.request_error_page("0123456789", ("GET /", "Traceback")),
                pages.maintenance_page(None, 300, 0).body, pages.fallback_page().body]
    for page in rendered:
        text = page.decode()
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
        assert text.count("<style>") == 1 and f"<style>{pages.STYLE}</style>" in text


def test_times_are_readable_not_iso():
    assert pages.readable_time(1_790_000_000) == "21 September 2026, 14:13 UTC"
    page = pages.maintenance_page(None, 300, 1_790_000_000).body.decode()
    assert "Since 21 September 2026, 14:13 UTC." in page and "2026-09-21" not in page


def test_backticks_become_code_and_everything_is_escaped():
    problem = Problem("c", "Bad <b>", "/x line 1", "Run `wsgi-shim check <SITE>` then `inv restart`.")
    html = pages.problem_html(problem)
    assert "`" not in html
    assert "<code>wsgi-shim check &lt;SITE&gt;</code>" in html and "<code>inv restart</code>" in html
    assert "Bad &lt;b&gt;" in html


def test_problems_in_file_order():
    f = "/s/config.toml"
    problems = [Problem("a", "a", f"{f} line 9, [wsgi] x", ""), Problem("b", "b", f"{f}, [wsgi] app", ""),
                Problem("c", "c", f"{f} line 2, [passenger] y", ""), Problem("d", "d", "/s/venv", ""),
                Problem("e", "e", f"{f} line 4, [z]", "")]
    assert [p.code for p in pages.in_file_order(problems)] == ["c", "e", "a", "b", "d"]


def test_surrogates_never_break_a_page():
    bad = os.fsdecode(b"/srv/caf\xe9/app.py")
    page = pages.error_page([Problem("c", f"x {bad}", f"{bad} line 3", "fix", f"trace {bad}\ud800")],
                            {"app root": bad}, "0123456789")
    full = page.full.decode("utf-8")
    assert "/srv/caf\\xe9/app.py" in full
    assert pages.request_error_page("0123456789", (bad, bad)).decode("utf-8")


def test_a_fifo_as_debug_token_or_source_file_never_blocks(tmp_path):
    from shim.runtime import optin

    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    token, why = optin.read_token(str(fifo))
    assert token == b"" and "FIFO" in why
    os.mkfifo(tmp_path / "app.py")
    assert pages.source_lines(str(tmp_path / "app.py"), 3) == []


def test_details_for_everyone_also_opens_the_request_error_page(tmp_path):
    from shim.runtime import diagnostics
    from shim.runtime.config import LoggingConfig

    def failing(environ, start_response):
        raise ValueError("view failed")

    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "203.0.113.9"}
    for everyone, shown in ((False, False), (True, True)):
        app = diagnostics.wrap(failing, LoggingConfig(details_for_everyone=everyone), None, [])
        body = b"".join(app(dict(env), lambda *a: None)).decode()
        assert ("ValueError: view failed" in body) is shown, body


def test_get_app_still_answers_when_the_error_page_itself_fails(tmp_path, monkeypatch):
    from shim.runtime import loader

    def broken(*args, **kwargs):
        raise RuntimeError("rendering failed")

    from shim.runtime import applog

    monkeypatch.setattr(pages, "error_page", broken)
    try:
        app = loader.get_app(tmp_path)  # no config.toml: a start-up error, whose page fails to render
    finally:
        applog.release()  # get_app captured this process's output into tmp_path's log: undo it
    seen = {}
    body = b"".join(app({"REQUEST_METHOD": "GET"}, lambda s, h, e=None: seen.update(status=s, headers=h)))
    assert seen["status"].startswith("500") and ("X-Wsgi-Shim", "error") in seen["headers"]
    assert b"This site could not start" in body and str(tmp_path).encode() not in body
