"""`wsgi-shim maint`, `restart` and `status` as subprocesses, on a site served as Passenger does."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.support.sites import VENV, load_like_passenger, make_site, wsgi_shim

pytestmark = pytest.mark.realserver


def test_maint_on_off_status_and_the_page():
    site = make_site("maint")
    assert "maintenance mode is off" in wsgi_shim("maint", "status", str(site.site)).stdout
    out = wsgi_shim("maint", "on", str(site.site))
    assert out.returncode == 0 and "maintenance mode is now on" in out.stdout
    assert "was already on" in wsgi_shim("maint", "on", str(site.site)).stdout
    page = load_like_passenger(site).response
    assert (page.code, page.kind, page.headers["Retry-After"]) == (503, "maintenance", "300")
    assert wsgi_shim("maint", "off", str(site.site)).returncode == 0
    assert load_like_passenger(site).response.body == "hello from the app"


def test_maintenance_wins_even_over_a_broken_config_and_custom_page_is_served():
    site = make_site("maint2")
    (site.approot / "down.html").write_text("<h1>Back at 5pm</h1>")
    os.chown(site.approot / "down.html", *os.stat(site.config_toml)[4:6])
    from tests.support.sites import update_config

    update_config(site, {"maintenance": {"page": "down.html", "retry_after": 60}})
    wsgi_shim("maint", "on", str(site.site))
    page = load_like_passenger(site).response
    assert page.body == "<h1>Back at 5pm</h1>" and page.headers["Retry-After"] == "60"
    site.config_toml.write_text("this is [not toml")
    page = load_like_passenger(site).response
    assert page.code == 503 and page.kind == "maintenance"


def test_restart_keeps_mode_and_two_restarts_in_one_second_both_count():
    site = make_site("restart")
    site.restart_txt.chmod(0o600)
    before = site.restart_txt.stat().st_mtime
    assert wsgi_shim("restart", str(site.site)).returncode == 0
    first = site.restart_txt.stat().st_mtime
    assert wsgi_shim("restart", str(site.site)).returncode == 0
    second = site.restart_txt.stat().st_mtime
    # Passenger compares whole seconds: each restart must move the mtime to a new second.
    assert int(before) < int(first) < int(second)
    assert stat.S_IMODE(site.restart_txt.stat().st_mode) == 0o600
    site.restart_txt.unlink()
    assert wsgi_shim("restart", str(site.site)).returncode == 0
    assert stat.S_IMODE(site.restart_txt.stat().st_mode) & 0o007 == 0


def test_restart_wait_reports_the_new_process_state():
    site = make_site("wait")
    out = wsgi_shim("restart", str(site.site), "--wait", "2")
    assert out.returncode == 1
    assert "no new process started within 2 s" in out.stderr and "--url" in out.stderr


def test_status_reports_last_start_and_pending_restart():
    site = make_site("status", app_source={"app.py": "raise RuntimeError('nope')\n"})
    out = wsgi_shim("status", str(site.site))
    assert "none recorded" in out.stdout and out.returncode == 1
    load_like_passenger(site)
    out = wsgi_shim("status", str(site.site), "--json")
    data = json.loads(out.stdout)
    assert data["last_start"]["state"] == "error"
    assert data["last_start"]["problems"][0]["code"] == "app-exception"
    assert out.returncode == 1
    (site.approot / "app.py").write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
    wsgi_shim("restart", str(site.site))
    assert json.loads(wsgi_shim("status", str(site.site), "--json").stdout)["restart_pending"] is True
    load_like_passenger(site)
    out = wsgi_shim("status", str(site.site))
    assert "serving the app" in out.stdout and out.returncode == 0


def test_commands_on_a_directory_that_is_no_site(tmp_path):
    for args in (("maint", "on"), ("restart",), ("check",), ("status",), ("logs",), ("serve",), ("releases",),
                 ("rollback",)):
        out = wsgi_shim(*args, "/srv")
        assert out.returncode == 1, args
        assert out.stderr.strip().splitlines() == [
            f"wsgi-shim {args[0]}: /srv is not a site: /srv has no app root www-approot/ (nor config.toml "
            "or passenger_wsgi.py). Create a site there with: wsgi-shim install /srv"], args
        assert out.stdout == ""


def test_restart_wait_timeout_shows_what_the_url_serves():
    import http.server
    import threading

    class Maintenance(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.send_header("X-Wsgi-Shim", "maintenance")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Maintenance)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        site = make_site("waiturl")
        load_like_passenger(site)  # an earlier start, shown as context
        url = f"http://127.0.0.1:{server.server_port}/"
        out = wsgi_shim("restart", str(site.site), "--wait", "2", "--url", url)
        assert out.returncode == 1
        assert f"{url} answers 503, serving maintenance" in out.stderr
        assert "last start (before this restart):" in out.stderr and "serving the app" in out.stderr
    finally:
        server.shutdown()


def test_status_names_the_current_release_and_check_says_deploy_first():
    from tests.support.sites import HELLO_APP, update_config, write_file

    site = make_site("release")
    update_config(site, {"wsgi": {"chdir": "current"}})
    out = wsgi_shim("check", str(site.site))
    assert "[chdir-missing]" in out.stdout
    assert f"Nothing is deployed yet: {VENV}/bin/wsgi-shim deploy {site.site} SOURCE" in out.stdout
    source = site.site / "src"
    write_file(source / "app.py", HELLO_APP)
    out = wsgi_shim("deploy", str(site.site), str(source))
    assert out.returncode == 0, out.stdout + out.stderr
    release = json.loads(wsgi_shim("status", str(site.site), "--json").stdout)["release"]
    assert release and (site.site / "releases" / release).is_dir()
    assert f"release:     {release}" in wsgi_shim("status", str(site.site)).stdout


def test_status_tells_current_and_earlier_errors_apart_with_one_id_and_the_exception_type():
    from tests.support.sites import write_file

    site = make_site("tidy", app_source={"app.py": "raise RuntimeError('nope')\n"})
    load_like_passenger(site)  # a failed start ...
    write_file(site.approot / "app.py", "def application(e, s):\n    if e['PATH_INFO'] == '/x':\n"
                                        "        raise KeyError('k')\n    s('200 OK', [])\n    return [b'ok']\n")
    assert wsgi_shim("restart", str(site.site)).returncode == 0  # ... fixed and restarted ...
    page = load_like_passenger(site, [{"path": "/x"}]).response  # ... and a request error now
    assert page.code == 500
    out = wsgi_shim("status", str(site.site))
    lines = out.stdout.splitlines()
    [start_line] = [ln for ln in lines if " start " in ln and "start failed" in ln]
    [request_line] = [ln for ln in lines if " request " in ln]
    assert start_line.startswith("earlier:") and "maybe fixed" in start_line
    assert "RuntimeError" in start_line
    assert request_line.startswith("error:") and "GET /x HTTP/1.1" in request_line
    assert request_line.endswith("KeyError: 'k'")
    assert "id :" not in out.stdout and "error id" not in request_line  # one id, never empty
    data = json.loads(wsgi_shim("status", str(site.site), "--json").stdout)
    start, request = data["errors"]
    assert (start["kind"], start["current"]) == ("start", False)
    assert (request["kind"], request["current"], request["exception"]) == ("request", True, "KeyError: 'k'")
    assert request["id"] and request["id"] in request["text"] and request["id"] not in request["summary"]
    for entry in data["errors"]:
        assert not {"error_id", "message"} & set(entry), entry  # no duplicated fields
    assert "recent_errors" not in data
