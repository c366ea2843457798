"""The preview (`wsgi-shim serve`, `wsgi-shim demo`, `inv serve`, `inv demo`) as a real server:
started as a subprocess, asked over HTTP, driven through restart.txt and maint.txt."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.apache import http_get
from tests.support.sites import BASE, VENV, make_site, update_config, write_file, wsgi_shim
from tests.tasks.conftest import REPO, command_env, inv, preview

WSGI_SHIM = [sys.executable, "-m", "shim.cli"]

# Reports what Passenger's loader would have set up for it.
PROBE_APP = """\
import json, os, pwd, sys

STARTED_PID = os.getpid()


def application(environ, start_response):
    body = json.dumps({
        "pid": STARTED_PID,
        "cwd": os.getcwd(),
        "path": sys.path[:3],
        "module": "passenger_wsgi" in sys.modules,
        "startup_file": getattr(sys.modules.get("passenger_wsgi"), "__file__", None),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "python": sys.executable,
        "version": "v1",
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def app_json(server) -> dict:
    response = server.get()
    assert response.status == 200, response.body
    return json.loads(response.body)


def serve_cmd(site, port: int) -> list[str]:
    return [*WSGI_SHIM, "serve", str(site.site), "--port", str(port)]


# --- a real site (owned by the test site user; the app runs as that user) -------------------


@pytest.mark.realserver
def test_serve_loads_passenger_wsgi_as_passenger_does(port, tmp_path):
    site = make_site("preview-load", {"app.py": PROBE_APP})
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        seen = app_json(server)
    assert seen["cwd"] == str(site.approot)
    assert str(site.approot) in seen["path"][:2]
    assert seen["module"] is True
    assert Path(site.approot, seen["startup_file"]) == site.passenger_wsgi
    # As root, the app runs as passenger_user with passenger_python, as under Passenger.
    assert seen["user"] == "shimsite"
    assert seen["python"] == f"{BASE}/venv/bin/python"
    starts = (site.approot / "logs" / "starts.jsonl").read_text().splitlines()
    assert json.loads(starts[-1])["state"] == "app"


@pytest.mark.realserver
def test_maint_on_and_restart_shows_the_maintenance_page_then_the_app_again(port, tmp_path):
    site = make_site("preview-maint")
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        assert server.get().body == "hello from the app"
        assert wsgi_shim("maint", "on", str(site.site)).returncode == 0
        page = server.poll(lambda r: r.status == 503, timeout=15)
        assert page.headers.get("x-wsgi-shim") == "maintenance"
        assert "retry-after" in page.headers
        assert wsgi_shim("maint", "off", str(site.site)).returncode == 0
        back = server.poll(lambda r: r.status == 200, timeout=15)
        assert back.body == "hello from the app"
        assert "x-wsgi-shim" not in back.headers
        assert "restart.txt changed: restarting the app process" in server.output()


@pytest.mark.realserver
def test_touching_restart_txt_loads_new_code_and_deleting_it_does_nothing(port, tmp_path):
    site = make_site("preview-restart", {"app.py": PROBE_APP})
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        first = app_json(server)
        write_file(site.approot / "app.py", PROBE_APP.replace('"v1"', '"v2"'))
        time.sleep(1.0)
        assert app_json(server)["pid"] == first["pid"], "restarted without restart.txt"
        assert wsgi_shim("restart", str(site.site)).returncode == 0
        server.poll(lambda r: r.status == 200 and '"v2"' in r.body, timeout=15)
        second = app_json(server)
        assert second["pid"] != first["pid"]
        # As Passenger: a deleted restart.txt triggers nothing.
        site.restart_txt.unlink()
        time.sleep(1.0)
        assert app_json(server)["pid"] == second["pid"]


@pytest.mark.realserver
def test_a_start_up_mistake_shows_the_shims_error_page(port, tmp_path):
    site = make_site("preview-error")
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        update_config(site, {"wsgi": {"app": "nosuchmodule.application"}})
        assert wsgi_shim("restart", str(site.site)).returncode == 0
        page = server.poll(lambda r: r.status == 500, timeout=15)
        assert page.headers.get("x-wsgi-shim") == "error"
        assert "nosuchmodule" in page.body


@pytest.mark.realserver
def test_a_broken_passenger_wsgi_gets_passengers_generic_page_until_fixed(port, tmp_path):
    site = make_site("preview-broken")
    good = site.passenger_wsgi.read_text()
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        write_file(site.passenger_wsgi, "import shim\napplication = shim.get_app(\n")
        assert wsgi_shim("restart", str(site.site)).returncode == 0
        page = server.poll(lambda r: r.status == 500, timeout=15)
        assert "something went wrong" in page.body
        assert "SyntaxError" in server.output()
        write_file(site.passenger_wsgi, good)
        assert wsgi_shim("restart", str(site.site)).returncode == 0
        assert server.poll(lambda r: r.status == 200, timeout=15).body == "hello from the app"


@pytest.mark.realserver
def test_inv_serve_runs_the_site_venvs_preview(port, tmp_path, own_repo):
    site = make_site("preview-inv")
    cmd = [sys.executable, "-m", "invoke", "serve", "--site", str(site.site),
           "--venv", str(VENV), "--port", str(port)]
    with preview(cmd, port, tmp_path / "serve.log", cwd=own_repo) as server:
        assert server.get().body == "hello from the app"
    assert f"{BASE}/venv/bin/python loading" in server.output()


# --- without a real site: as whoever runs the tests ---------------------------------------------


def fake_site(root: Path, python: str) -> Path:
    approot = root / "www-approot"
    (approot / "tmp").mkdir(parents=True)
    (approot / "passenger_wsgi.py").write_text(
        "import sys\n\n\ndef application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [sys.executable.encode()]\n")
    (approot / "config.toml").write_text(f'[passenger]\npassenger_python = "{python}"\n')
    return root


def test_missing_passenger_python_falls_back_to_this_python_with_a_warning(port, tmp_path):
    root = fake_site(tmp_path / "site", "/nonexistent/bin/python")
    with preview([*WSGI_SHIM, "serve", str(root), "--port", str(port)], port,
                 tmp_path / "serve.log") as server:
        assert server.get().body == sys.executable
    assert "WARNING: passenger_python '/nonexistent/bin/python'" in server.output()


def test_serve_refuses_a_directory_that_is_not_a_site(tmp_path):
    result = subprocess.run([*WSGI_SHIM, "serve", str(tmp_path), "--port", "1"],
                            env=command_env(), capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode == 1
    assert "not a site" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_reports_a_busy_port(tmp_path):
    root = fake_site(tmp_path / "site", sys.executable)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        result = subprocess.run([*WSGI_SHIM, "serve", str(root), "--port", str(taken)],
                                env=command_env(), capture_output=True, text=True, check=False,
                                timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken}" in result.stderr


def test_demo_serves_a_hello_app_and_honours_maintenance(port, tmp_path):
    demo_dir = tmp_path / "demo"
    with preview([*WSGI_SHIM, "demo", str(demo_dir), "--port", str(port)], port,
                 tmp_path / "demo.log") as server:
        hello = server.get()
        assert hello.status == 200, server.output()
        assert "Hello from the wsgi-shim demo" in hello.body
        maint = subprocess.run([*WSGI_SHIM, "maint", "on", str(demo_dir)], env=command_env(),
                               capture_output=True, text=True, check=False, timeout=60)
        assert maint.returncode == 0, maint.stderr
        page = server.poll(lambda r: r.status == 503, timeout=15)
        assert page.headers.get("x-wsgi-shim") == "maintenance"
    assert (demo_dir / "www-approot" / "hello.py").is_file()


def test_inv_demo_from_the_repo_root(port, tmp_path):
    """The quick start's `inv demo` (docs/quickstart.md)."""
    cmd = [sys.executable, "-m", "invoke", "demo", "--dir", str(tmp_path / "demo"),
           "--port", str(port)]
    with preview(cmd, port, tmp_path / "demo.log", cwd=REPO) as server:
        assert "Hello from the wsgi-shim demo" in server.get().body


def test_inv_list_and_fab_list_show_every_task():
    expected = {"build-python", "venv", "install", "check", "maint", "restart", "status", "logs",
                "serve", "demo"}
    for tool in ("invoke", "fabric"):
        result = subprocess.run([sys.executable, "-m", tool, "--list"], cwd=REPO,
                                env=command_env(), capture_output=True, text=True, check=False,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()}
        assert expected <= listed, (tool, result.stdout)


def test_own_repo_settings_come_from_invoke_yaml_env_and_f_file(own_repo, tmp_path):
    (own_repo / "invoke.yaml").write_text("shim:\n  site: /from/invoke-yaml\n")
    (own_repo / "fabric.yaml").write_text("shim:\n  site: /from/fabric-yaml\n  venv: /v\n")
    runtime = tmp_path / "runtime.yaml"
    runtime.write_text("shim:\n  site: /from/f-file\n")

    def dry(tool: str, *args: str, **env: str) -> str:
        result = subprocess.run([sys.executable, "-m", tool, "--dry", *args], cwd=own_repo,
                                env=command_env(**env), capture_output=True, text=True,
                                check=False, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().replace("\x1b[1;37m", "").replace("\x1b[0m", "").splitlines()
        # Each task first checks that the venv's wsgi-shim exists (test -x), then runs it.
        precheck, command = lines
        assert precheck == f"test -x {command.split()[0]}"
        return command

    shim = "venv/bin/wsgi-shim"
    assert dry("invoke", "check") == f"/from/invoke-yaml/{shim} check /from/invoke-yaml/www-approot"
    assert dry("invoke", "maint", "on", INVOKE_SHIM_SITE="/env") == (
        f"/env/{shim} maint on /env/www-approot")
    assert dry("invoke", "-f", str(runtime), "status", INVOKE_SHIM_SITE="/env") == (
        f"/from/f-file/{shim} status /from/f-file/www-approot")
    # fab reads fabric.yaml and FABRIC_*, not invoke.yaml.
    assert dry("fabric", "restart") == "/v/bin/wsgi-shim restart /from/fabric-yaml/www-approot"
    assert dry("fabric", "restart", FABRIC_SHIM_URL="http://x/") == (
        "/v/bin/wsgi-shim restart /from/fabric-yaml/www-approot --url http://x/")
    # A flag beats every file; the venv still comes from fabric.yaml.
    assert dry("fabric", "-f", str(runtime), "check", "--site", "/flag") == (
        "/v/bin/wsgi-shim check /flag/www-approot")


def test_a_task_without_a_site_says_how_to_set_one(own_repo):
    result = inv("check", cwd=own_repo)
    assert result.returncode == 2
    assert "No site given" in result.stderr
    assert "Traceback" not in result.stderr



# --- a preview that talks, a demo that is quiet -------------------------------------------------

FAILING_APP = """\
def application(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise ZeroDivisionError("boom at request time")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]
"""


@pytest.mark.realserver
def test_serve_prints_a_line_per_request_and_the_traceback_of_a_failing_one(port, tmp_path):
    site = make_site("preview-talks", {"app.py": FAILING_APP})
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        assert server.get("/fine?x=1").body == "fine"
        failed = server.get("/boom")
        assert failed.status == 500 and failed.headers.get("x-wsgi-shim") == "app-error"
        server.get("/%1b%5b2J")  # an escape sequence in the path must not reach the terminal raw
        poll_output(server, "ZeroDivisionError: boom at request time")
    out = server.output()
    assert "[wsgi-shim serve] GET /fine?x=1 -> 200 (" in out
    assert "[wsgi-shim serve] GET /boom -> 500 (" in out
    assert "[wsgi-shim serve] GET /%1B%5B2J -> 404 (" in out or "GET /%1B%5B2J -> 200 (" in out
    assert "\x1b" not in out
    # The traceback, as the app log has it, with the request's error id.
    error_id = failed.body.split("error id")[1].split()[0].strip("<>/:.")[:10] if "error id" in failed.body else ""
    assert 'line 3, in application' in out and "Traceback (most recent call last)" in out
    if error_id:
        assert error_id in out


def poll_output(server, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.output():
        assert time.monotonic() < deadline, f"{text!r} not in:\n{server.output()}"
        time.sleep(0.2)


def demo_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("wsgi-shim-demo-*"))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_demo_is_quiet_its_commands_work_as_printed_and_its_site_goes_on_exit(port, tmp_path, monkeypatch,
                                                                               stop):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    with preview([*WSGI_SHIM, "demo", "--port", str(port)], port, tmp_path / "demo.log") as server:
        assert "Hello from the wsgi-shim demo" in server.get().body
        [site_dir] = demo_dirs(tmp)
        printed = server.output()
        commands = [ln.strip() for ln in printed.splitlines() if ln.startswith("    ")]
        # A new shell: no venv on PATH, no PYTHONPATH.
        clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
        maint_on = next(c for c in commands if " maint on " in c).split("#")[0]
        done = subprocess.run(["bash", "-c", maint_on], env=clean, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert server.poll(lambda r: r.status == 503, timeout=15).headers.get("x-wsgi-shim") == "maintenance"
        os.killpg(server.proc.pid, stop)
        server.proc.wait(30)
    out = server.output()
    head = out.split("[wsgi-shim serve]")[0]
    assert len(head.strip().splitlines()) <= 10, head
    assert f"http://127.0.0.1:{port}/" in head and str(site_dir) in head
    for noise in ("Maintenance mode is ON", "Values for the sysadmins", "PassengerAppRoot", "touch "):
        assert noise not in out
    assert all(not c.startswith("wsgi-shim ") for c in commands), commands  # full paths only
    assert any(" restart " in c for c in commands)
    assert demo_dirs(tmp) == [], "the temporary demo site was left behind"
    assert "Traceback" not in out


def test_demo_keep_keeps_the_temporary_site(port, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with preview([*WSGI_SHIM, "demo", "--keep", "--port", str(port)], port, tmp_path / "demo.log") as server:
        server.get()
    [kept] = demo_dirs(tmp_path)
    assert (kept / "www-approot" / "hello.py").is_file()


def test_demo_on_a_busy_port_says_so_in_one_line_and_creates_nothing(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        result = subprocess.run([*WSGI_SHIM, "demo", "--port", str(taken)],
                                env=command_env(TMPDIR=str(tmp_path)), capture_output=True, text=True,
                                check=False, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"wsgi-shim demo: cannot listen on 127.0.0.1:{taken}: Address already in use"]
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


# --- who gets in (issue 19.2): nobody by address, only the owner's browser by the printed URL --

AS_STRANGER = """\
import sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""

COOKIE_APP = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("app; cookies seen: " + environ.get("HTTP_COOKIE", "none")).encode()]
"""


def as_stranger(url: str) -> tuple[int, str]:
    """GET url as shimother, another user of this machine (from 127.0.0.1, as the owner)."""
    from tests.support.accounts import OTHER_USER
    from tests.support.sites import run_as

    out = run_as(OTHER_USER, OTHER_USER, ["/usr/bin/python3", "-c", AS_STRANGER, url], timeout=60).stdout
    status, _, body = out.partition("\n")
    return int(status), body


@pytest.mark.realserver
def test_another_user_of_the_machine_gets_neither_details_nor_the_app(port, tmp_path):
    site = make_site("preview-gate", {"app.py": COOKIE_APP})
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        status, body = as_stranger(server.url)
        assert status == 403 and "app; cookies" not in body and "wsgi-shim serve" in body, body
        assert server.get().body == "app; cookies seen: none"  # the preview's cookie is not the app's
        assert server.get("/", owner=False).status == 403
        wrong = http_get(server.owner_url()[:-3] + "xyz", timeout=10)
        assert wrong.status == 403 and "set-cookie" not in wrong.headers
        token = server.owner_url().rsplit("=", 1)[1]
        assert token not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        locked = wsgi_shim("status", str(site.site), "--url", server.url)
        assert locked.returncode == 1 and "answers 403, serving preview-locked" in locked.stdout, locked.stdout
        opened = wsgi_shim("status", str(site.site), "--url", server.owner_url())  # follows the login
        assert opened.returncode == 0 and "answers 200, serving app" in opened.stdout, opened.stdout
        assert token not in opened.stdout
        update_config(site, {"wsgi": {"app": "nosuchmodule.application"}})
        assert wsgi_shim("restart", str(site.site)).returncode == 0
        page = server.poll(lambda r: r.status == 500, timeout=15)
        assert "nosuchmodule" in page.body  # the owner sees the details
        status, body = as_stranger(server.url)
        assert status == 403 and "nosuchmodule" not in body and str(site.approot) not in body, body
    assert token not in server.output().split(server.owner_url())[1]  # requests are logged without it


@pytest.mark.realserver
def test_the_printed_url_sets_an_httponly_samesite_cookie_and_redirects(port, tmp_path):
    site = make_site("preview-cookie")
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log", login=False) as server:
        url = server.owner_url()
        r = http_get(url.replace("/?", "/some/page?a=1&"), timeout=10)
        assert r.status == 303 and r.headers["location"] == "/some/page?a=1"
        cookie = r.headers["set-cookie"]
        assert f"wsgi_shim_preview_{port}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert http_get(server.url, {"Cookie": cookie.split(";")[0]}).body == "hello from the app"
