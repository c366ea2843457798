"""The exception middleware: error id page, traceback in the log, opt-in, secrets kept out."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shim.runtime import diagnostics
from shim.runtime.applog import AppLog
from shim.runtime.config import LoggingConfig
from shim.ops.logview import find_error, read_entries

REPO = Path(__file__).resolve().parents[1]
TOKEN = "opt-in-token-0123456789abcdef"
FILE_SECRET = "file-secret-Zq8v2"
ENV_SECRET = "env-secret-Yp3w7"
PATTERN_SECRET = "acct-55501234"


def make(tmp_path: Path, app, **kw):
    token_file = tmp_path / "debug-token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    kw.setdefault("debug_token_file", str(token_file))
    cfg = LoggingConfig(path=tmp_path / "logs" / "app.log", redact=[r"acct-\d{8}"], **kw)
    log = AppLog(cfg.path)
    return diagnostics.wrap(app, cfg, log, [FILE_SECRET]), log


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, status, headers, exc_info=None):
        self.calls.append((status, headers, exc_info))
        return lambda data: None

    @property
    def status(self):
        return self.calls[-1][0]

    @property
    def headers(self):
        return dict(self.calls[-1][1])


def environ(**extra):
    env = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/boom",
           "QUERY_STRING": "page=2", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "192.0.2.10",
           "HTTP_HOST": "example.test", "wsgi.url_scheme": "http"}
    env.update(extra)
    return env


def failing_app(environ, start_response):
    raise RuntimeError(f"view failed <b>{environ.get('HTTP_AUTHORIZATION', '')}</b> "
                       f"{FILE_SECRET} {os.environ.get('SHOP_API_TOKEN', '')} {PATTERN_SECRET}")


def call(app, env):
    sr = Recorder()
    body = b"".join(app(env, sr))
    return sr, body.decode()


def error_id_of(page: str) -> str:
    m = re.search(r'class="error-id">([0-9a-f]+)<', page)
    assert m, page
    return m.group(1)


@pytest.fixture(autouse=True)
def env_secret(monkeypatch):
    monkeypatch.setenv("SHOP_API_TOKEN", ENV_SECRET)


def test_ordinary_request_gets_plain_page_and_log_gets_traceback(tmp_path):
    app, log = make(tmp_path, failing_app)
    sr, page = call(app, environ(HTTP_AUTHORIZATION="Bearer header-cred-123456"))
    assert sr.status.startswith("500")
    assert sr.headers["X-Wsgi-Shim"] == "app-error"
    assert sr.headers["Content-Type"].startswith("text/html")
    assert int(sr.headers["Content-Length"]) == len(page.encode())
    assert "Traceback" not in page and "RuntimeError" not in page and "failing_app" not in page
    eid = error_id_of(page)
    entry = find_error(log.path, eid)
    assert entry is not None and entry["level"] == "ERROR"
    assert f"error id {eid}: GET /boom?page=2 HTTP/1.1 from 192.0.2.10" in entry["text"]
    assert "Traceback (most recent call last)" in entry["text"]
    assert "in failing_app" in entry["text"] and "RuntimeError: view failed" in entry["text"]
    assert "shim/diagnostics.py" not in entry["text"]  # the middleware's own frame is left out
    assert "Host: example.test" in entry["text"]
    assert "Authorization: [redacted]" in entry["text"]


def test_opted_in_by_header_sees_escaped_traceback(tmp_path):
    app, log = make(tmp_path, failing_app)
    sr, page = call(app, environ(HTTP_X_SHIM_DEBUG_TOKEN=TOKEN))
    assert sr.status.startswith("500") and sr.headers["X-Wsgi-Shim"] == "app-error"
    assert "Traceback (most recent call last)" in page
    assert "RuntimeError: view failed &lt;b&gt;" in page  # HTML-escaped
    assert "<b>" not in page
    assert error_id_of(page) in page
    assert TOKEN not in page and TOKEN not in log.path.read_text()


def test_opted_in_by_cookie(tmp_path):
    app, _ = make(tmp_path, failing_app)
    _, page = call(app, environ(HTTP_COOKIE=f"sessionid=abcdefgh1234; shim_debug_token={TOKEN}"))
    assert "Traceback" in page
    assert "abcdefgh1234" not in page and TOKEN not in page


def test_wrong_or_missing_token_sees_nothing(tmp_path):
    app, _ = make(tmp_path, failing_app)
    for env in (environ(HTTP_X_SHIM_DEBUG_TOKEN=TOKEN[:-1] + "X"),
                environ(HTTP_COOKIE="shim_debug_token="),
                environ(HTTP_X_SHIM_DEBUG_TOKEN="")):
        _, page = call(app, env)
        assert "Traceback" not in page


def test_opted_in_by_address(tmp_path):
    app, _ = make(tmp_path, failing_app, debug_addresses=["192.0.2.0/28", "2001:db8::1"])
    assert "Traceback" in call(app, environ(REMOTE_ADDR="192.0.2.10"))[1]
    assert "Traceback" in call(app, environ(REMOTE_ADDR="2001:db8::1"))[1]
    assert "Traceback" not in call(app, environ(REMOTE_ADDR="192.0.2.99"))[1]
    assert "Traceback" not in call(app, environ(REMOTE_ADDR="not-an-ip"))[1]


def test_world_readable_token_file_is_refused_and_logged(tmp_path):
    _, log = make(tmp_path, failing_app)
    os.chmod(tmp_path / "debug-token", 0o644)
    app = diagnostics.wrap(failing_app, LoggingConfig(path=log.path, debug_token_file=str(
        tmp_path / "debug-token")), log, [])
    assert "Traceback" not in call(app, environ(HTTP_X_SHIM_DEBUG_TOKEN=TOKEN))[1]
    assert "is readable by everyone" in log.path.read_text()


def test_short_token_is_refused(tmp_path):
    short = tmp_path / "short"
    short.write_text("abc")
    os.chmod(short, 0o600)
    log = AppLog(tmp_path / "app.log")
    app = diagnostics.wrap(failing_app, LoggingConfig(path=log.path, debug_token_file=str(short)),
                           log, [])
    assert "Traceback" not in call(app, environ(HTTP_X_SHIM_DEBUG_TOKEN="abc"))[1]
    assert "fewer than 16 characters" in log.path.read_text()


def test_secrets_never_reach_log_or_opted_in_page(tmp_path):
    app, log = make(tmp_path, failing_app)
    basic = "Basic dXNlcjpiYXNpYy1wYXNzd29yZC05OQ=="  # user:basic-password-99
    env = environ(HTTP_AUTHORIZATION=basic, HTTP_X_SHIM_DEBUG_TOKEN=TOKEN,
                  HTTP_COOKIE="csrftoken=cookie-val-777777", QUERY_STRING="api_key=query-key-8888",
                  DB_PASSWORD="server-env-pw-4444")
    _, page = call(app, env)
    text = log.path.read_text()
    for secret in (FILE_SECRET, ENV_SECRET, PATTERN_SECRET, TOKEN, "dXNlcjpiYXNpYy1wYXNzd29yZC05OQ",
                   "cookie-val-777777", "query-key-8888", "server-env-pw-4444"):
        assert secret not in page, secret
        assert secret not in text, secret
    assert "Traceback" in page and "[redacted]" in page


def test_list_response_is_returned_unchanged(tmp_path):
    body = [b"hello"]

    def ok(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    app, _ = make(tmp_path, ok)
    assert app(environ(), Recorder()) is body


def test_catch_errors_off_returns_the_app_itself(tmp_path):
    log = AppLog(tmp_path / "app.log")
    assert diagnostics.wrap(failing_app, LoggingConfig(catch_errors=False), log, []) is failing_app
    assert diagnostics.wrap(failing_app, LoggingConfig(enabled=False), log, []) is failing_app


def test_error_in_iteration_before_any_body(tmp_path):
    def gen_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        raise ValueError("late failure")

    app, log = make(tmp_path, gen_app)
    sr, page = call(app, environ())
    assert sr.status.startswith("500") and sr.calls[-1][2] is not None  # exc_info passed
    assert "late failure" in find_error(log.path, error_id_of(page))["text"]


def test_error_after_body_started_aborts_with_error_id_only(tmp_path):
    def gen_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        raise ValueError(f"mid-stream {FILE_SECRET}")

    app, log = make(tmp_path, gen_app)
    it = iter(app(environ(), Recorder()))
    assert next(it) == b"partial"
    with pytest.raises(diagnostics.ResponseAborted) as exc:
        next(it)
    assert FILE_SECRET not in str(exc.value)
    eid = re.search(r"error id ([0-9a-f]+)", str(exc.value)).group(1)
    assert "while sending the response" in find_error(log.path, eid)["text"]


def test_error_in_close_is_logged(tmp_path):
    class Body:
        def __iter__(self):
            return iter([b"ok"])

        def close(self):
            raise OSError("close failed")

    def app_(environ, start_response):
        start_response("200 OK", [])
        return Body()

    app, log = make(tmp_path, app_)
    result = app(environ(), Recorder())
    assert list(result) == [b"ok"]
    result.close()
    assert "while closing the response" in log.path.read_text()
    assert "OSError: close failed" in log.path.read_text()


def test_generator_close_is_forwarded(tmp_path):
    closed = []

    def gen_app(environ, start_response):
        start_response("200 OK", [])
        try:
            yield b"a"
            yield b"b"
        finally:
            closed.append(True)

    app, _ = make(tmp_path, gen_app)
    result = app(environ(), Recorder())
    it = iter(result)
    next(it)
    result.close()
    assert closed == [True]


def test_no_applog_still_answers_with_error_id(tmp_path, capfd):
    app = diagnostics.wrap(failing_app, LoggingConfig(), None, [FILE_SECRET])
    sr, page = call(app, environ())
    assert sr.status.startswith("500")
    err = capfd.readouterr().err
    assert f"error id {error_id_of(page)}" in err and FILE_SECRET not in err


def test_through_a_real_http_server(tmp_path):
    """waitress over loopback: the same pages, headers and opt-in as a browser would see."""
    waitress = pytest.importorskip("waitress.server")
    app, log = make(tmp_path, failing_app)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        port = server.effective_port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/boom", headers={"Authorization": "Bearer real-http-cred-42"})
        r = conn.getresponse()
        page = r.read().decode()
        assert r.status == 500 and r.getheader("X-Wsgi-Shim") == "app-error"
        assert "Traceback" not in page
        conn.request("GET", "/boom", headers={"Cookie": f"shim_debug_token={TOKEN}"})
        r = conn.getresponse()
        page2 = r.read().decode()
        assert r.status == 500 and "Traceback" in page2
        assert "real-http-cred-42" not in log.path.read_text()
        assert len([e for e in read_entries(log.path) if e["error_id"]]) == 2
    finally:
        server.close()


def test_logs_id_finds_the_entry_through_the_cli(tmp_path):
    site = tmp_path / "site"
    approot = site / "www-approot"
    approot.mkdir(parents=True)
    log = AppLog(approot / "logs" / "app.log")
    app = diagnostics.wrap(failing_app, LoggingConfig(path=log.path), log, [])
    _, page = call(app, environ())
    eid = error_id_of(page)
    for i in range(5):
        log.entry("INFO", "stdout", f"noise {i}")
    cmd = [sys.executable, "-c", "import sys; from shim.cli import main; sys.exit(main())"]

    def logs(*args):
        return subprocess.run([*cmd, "logs", str(site), *args], capture_output=True, text=True,
                              check=False, cwd=REPO, timeout=60)

    r = logs("--id", eid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(next(e["lines"][0] for e in read_entries(log.path)
                                     if e["error_id"] == eid))
    assert "RuntimeError: view failed" in r.stdout and "noise" not in r.stdout
    r = logs("--id", "0000000000")
    assert r.returncode == 1 and "No entry with error id 0000000000" in r.stderr


def test_flask_errors_reach_the_log_and_propagated_ones_get_the_error_id_page(tmp_path):
    """Flask answers view errors itself (its own 500) and logs them: with capture on that
    traceback lands in the app log. With PROPAGATE_EXCEPTIONS the shim's error-id page is used."""
    import logging

    flask = pytest.importorskip("flask")
    from shim.runtime import applog

    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        cfg = LoggingConfig(path=tmp_path / "app.log")
        log, _ = applog.setup(cfg, [])
        app = flask.Flask("flaskdemo")

        @app.route("/boom")
        def boom():
            raise LookupError("flask view failed")

        wrapped = diagnostics.wrap(app, cfg, log, [])
        sr, page = call(wrapped, environ())
        assert sr.status.startswith("500") and "X-Wsgi-Shim" not in sr.headers  # Flask's page
        assert "LookupError: flask view failed" in log.path.read_text()

        app.config["PROPAGATE_EXCEPTIONS"] = True
        sr, page = call(wrapped, environ())
        assert sr.headers["X-Wsgi-Shim"] == "app-error"
        assert "LookupError: flask view failed" in find_error(log.path, error_id_of(page))["text"]
    finally:
        applog.release()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
