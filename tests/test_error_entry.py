"""Issue 19 items 3 and 4: a visitor cannot erase the evidence of their own request, and the
records stay bounded. The real middleware writes to a real app log; what the owner reads is
parsed back with the log viewer. (Through real Apache + Passenger: tests/e2e/test_bounded_records.py.)
"""

from __future__ import annotations

import re

from shim.ops.logview import find_error, read_entries
from shim.runtime import diagnostics
from shim.runtime.applog import AppLog
from shim.runtime.config import LoggingConfig
from shim.runtime.error_entry import HEADER_BLOCK_LIMIT, HEADER_VALUE_LIMIT
from shim.runtime.redact import MASK
from shim.runtime.throttle import FULL_PER_WINDOW, ErrorThrottle
from tests.test_diagnostics import Recorder, error_id_of

RESET_TOKEN = "rst-tok-Hq72Lm0Pz4"
CLIENT = "203.0.113.77"
UA = "Mozilla/5.0 (X11; Linux x86_64) VisitorBrowser/42"
TOKEN = "owner-token-0123456789abcdef"


def make(tmp_path, app):
    token_file = tmp_path / "debug-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    cfg = LoggingConfig(path=tmp_path / "logs" / "app.log", debug_token_file=str(token_file))
    log = AppLog(cfg.path)
    return diagnostics.wrap(app, cfg, log, []), log


def views(environ, start_response):
    if environ["PATH_INFO"] == "/reset":
        # The app echoes the query value in its exception, as apps do.
        raise ValueError(f"bad reset token {environ['QUERY_STRING'].split('=', 1)[1]} "
                         f"for session {environ.get('HTTP_COOKIE', '')}")
    raise KeyError("missing")


def request(path, query="", **headers):
    env = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
           "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": CLIENT, "HTTP_HOST": "shop.example",
           "HTTP_USER_AGENT": UA, "wsgi.url_scheme": "http"}
    env.update(headers)
    return env


def call(app, env):
    sr = Recorder()
    return sr, b"".join(app(env, sr)).decode()


def test_a_visitor_cannot_erase_their_request_from_the_entry(tmp_path):
    app, log = make(tmp_path, views)
    # Cookies whose values are the visitor's own address, method, path, user agent, the
    # exception's type, a word of every traceback and a frame's function name.
    cookies = "; ".join(f"c{i}={v}" for i, v in enumerate(
        [CLIENT, "GET", "/reset", UA, "ValueError", "Traceback", "views", "most recent call last",
         "HTTP/1.1", "session-Zp09xx"]))
    env = request("/reset", f"reset_token={RESET_TOKEN}", HTTP_COOKIE=cookies,
                  HTTP_X_AUTH_TOKEN="ValueError", HTTP_AUTHORIZATION=f"Bearer {CLIENT}")
    _, page = call(app, env)
    entry = find_error(log.path, error_id_of(page))
    text = entry["text"]
    assert f"GET /reset?reset_token={MASK} HTTP/1.1 from {CLIENT}" in text, text
    assert f"User-Agent: {UA}" in text
    assert 'File "' in text and ", in views" in text and "Traceback (most recent call last)" in text
    assert "\n  ValueError: bad reset token [redacted] for session" in text, text
    # Masked where they stand, and in the rest of the entry (the exception's message).
    assert f"Cookie: c0={MASK}; c1={MASK}" in text and "Authorization: [redacted]" in text
    assert "X-Auth-Token: [redacted]" in text
    assert RESET_TOKEN not in text and "session-Zp09xx" not in text
    # The opted-in page: same rules.
    _, page = call(app, {**env, "HTTP_X_SHIM_DEBUG_TOKEN": TOKEN})
    assert RESET_TOKEN not in page and "session-Zp09xx" not in page and TOKEN not in page
    assert f"from {CLIENT}" in page and "ValueError" in page and ", in views" in page


def test_header_values_and_the_header_block_are_capped(tmp_path):
    app, log = make(tmp_path, views)
    big = {f"HTTP_X_FILLER_{i}": chr(65 + i) * 7700 for i in range(10)}  # 77 KiB of headers
    _, page = call(app, request("/boom", **big))
    text = find_error(log.path, error_id_of(page))["text"]
    assert f"X-Filler-0: {'A' * HEADER_VALUE_LIMIT} ... ({7700 - HEADER_VALUE_LIMIT} bytes more)" in text
    assert re.search(r"\(\d+ more headers not logged, \d+ bytes more\)", text), text
    assert len(text) < HEADER_BLOCK_LIMIT + 4096, len(text)
    assert "KeyError: 'missing'" in text and f"from {CLIENT}" in text


def test_repeated_identical_errors_are_counted_not_logged_in_full(tmp_path):
    app, log = make(tmp_path, views)
    _, first = call(app, request("/reset", "reset_token=abcdefgh"))  # the incident
    ids = [error_id_of(call(app, request("/boom"))[1]) for _ in range(100)]
    assert len(set(ids[:FULL_PER_WINDOW])) == FULL_PER_WINDOW
    assert set(ids[FULL_PER_WINDOW:]) == {ids[FULL_PER_WINDOW - 1]}  # the id leads to a full entry
    entries = list(read_entries(log.path))
    texts = ["\n".join(e["lines"]) for e in entries]
    full = [t for t in texts if "Traceback" in t]
    assert len(full) == FULL_PER_WINDOW + 1
    summaries = [t for t in texts if " more like error id " in t]
    # At 1, 2, 4 ... 64 suppressed: a bounded number of lines, each naming the full entry.
    assert [int(t.split("shim.request: ")[1].split()[0]) for t in summaries] == [1, 2, 4, 8, 16, 32, 64]
    assert all(f"more like error id {ids[FULL_PER_WINDOW - 1]} (KeyError at " in t for t in summaries)
    assert find_error(log.path, error_id_of(first)) is not None


def test_throttle_window_reports_the_exact_count():
    t = ErrorThrottle(full=2, window=60)
    assert t.admit("K", "a", 0)[0] and t.admit("K", "b", 1)[0]
    results = [t.admit("K", f"x{i}", 2 + i) for i in range(5)]
    assert [r[0] for r in results] == [False] * 5 and {r[1] for r in results} == {"b"}
    assert [bool(r[2]) for r in results] == [True, True, False, True, False]  # at 1, 2, 4
    full, shown, summary = t.admit("K", "c", 61)
    assert full and shown == "c" and summary.startswith("5 more like error id b (K)")
    t.admit("K", "d", 62)
    t.admit("K", "e", 63)
    assert t.pending() == [] and t.admit("K", "f", 64)[2] is not None
    assert t.pending() == []
    t.admit("K", "g", 65)
    t.admit("K", "h", 66)  # the 4th: reported
    assert t.pending() == []
    t.admit("K", "i", 67)
    assert t.pending()[0].startswith("5 more like error id d (K)") and t.pending() == []


def test_a_large_secret_file_is_masked_whole_and_by_line_in_one_pass():
    """The one-pass masking used for many values (a CA bundle as a secret file) masks what the
    value-by-value search masked: every line, in its printed forms, overlapping secrets whole."""
    import base64
    import json
    import urllib.parse

    from bench.masking import pem_bundle
    from shim.runtime.redact import Redactor, structured_values

    bundle = pem_bundle()
    r = Redactor([bundle, *structured_values(bundle)])
    lines = bundle.splitlines()
    picked = [lines[1], lines[1799], lines[-2]]
    text = " | ".join([f"leak {picked[0]}!", repr(picked[1]), json.dumps(picked[2]),
                       urllib.parse.quote(picked[1], safe=""), base64.b64encode(picked[0].encode()).decode(),
                       "Basic " + base64.b64encode(("u:" + picked[2]).encode()).decode(), "ValueError at views.py:12"])
    masked = r(text)
    assert len(r._values) > 10_000  # the one-pass branch
    for line in picked:
        for form in (line, urllib.parse.quote(line, safe=""), base64.b64encode(line.encode()).decode()):
            assert form not in masked, form
    assert "ValueError at views.py:12" in masked and masked.startswith("leak [redacted]!")
    assert r(bundle) == MASK
    # Two secrets that overlap are masked as one span, neither partly shown.
    many = Redactor([f"filler-secret-{i:05d}" for i in range(2000)] + ["abcd1234", "1234wxyz5678"])
    assert many("x abcd1234wxyz5678 y") == f"x {MASK} y"
