"""Deploys under continuous load through real Apache + Passenger (issue 8, point 9).

Client threads of tests/support/load.py request the site on loopback without pause while a
deploy runs; Passenger starts extra processes on its own under that load, so any moment at
which `current`, config.toml or maintenance showed an unchecked or half-done state would be
served to someone. Each test asserts what every one of those responses was.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_passenger import serve, shim_ok
from tests.support.accounts import PROJECT_GROUP, SITE_USER
from tests.support.apache import ApacheServer, http_get, poll
from tests.support.load import Load, LoadResult
from tests.support.sites import VENV, make_site, update_config, write_file, wsgi_shim

pytestmark = pytest.mark.realserver

CLIENTS = 4


def app(body: str) -> str:
    return ("def application(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [b'{body}']\n")


DATA_APP = """
def application(environ, start_response):
    with open("data/notes.txt") as f:
        notes = f.read()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'{name} ' + notes.encode()]
"""


def version(site, name: str, text: str | None = None) -> Path:
    src = site.site.parent / name
    write_file(src / "app.py", text if text is not None else app(name))
    return src


def served(marker: str):
    return lambda r: r.status == 200 and "x-wsgi-shim" not in r.headers and marker in r.body


def live_site(apache: ApacheServer, name: str) -> tuple:
    """A site served by Passenger with release v1 deployed and serving."""
    site = make_site(name)
    url = serve(apache, site) + "/"
    shim_ok("deploy", str(site.site), str(version(site, "v1")), "--init", "--wait", "30", "--url", url)
    poll(url, served("v1"), timeout=30)
    return site, url


def only_app(result: LoadResult) -> list:
    return [s for s in result.samples if not LoadResult.acceptable(s, maintenance_ok=False)]


def wait_for_body(load: Load, body: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s.body == body for s in load.result.samples[-50:]):
            return
        time.sleep(0.2)
    raise AssertionError(f"{body!r} never served: {load.result.summary()}")


def test_plain_deploy_and_rollback_under_load_fail_no_request(apache: ApacheServer, site_venv: Path) -> None:
    site, url = live_site(apache, "load-plain")
    with Load(url, clients=CLIENTS, limit=120) as load:
        time.sleep(1)
        shim_ok("deploy", str(site.site), str(version(site, "v2")), "--wait", "30", "--url", url)
        wait_for_body(load, b"v2")
        r = shim_ok("rollback", str(site.site), "--wait", "30", "--url", url)
        assert "Rolled back to" in r.stdout
        wait_for_body(load, b"v1")
        time.sleep(1)
    result = load.result
    print(result.summary())
    assert result.samples and not only_app(result), result.summary()
    assert result.bodies()[b"v2"] > 0 and result.samples[-1].body == b"v1"  # rollback serves v1 again


def test_a_release_whose_import_fails_answers_not_one_request(apache: ApacheServer, site_venv: Path) -> None:
    site, url = live_site(apache, "load-broken")
    broken = version(site, "v2", "import no_such_module_in_v2\n" + app("v2"))
    with Load(url, clients=CLIENTS, limit=120) as load:
        time.sleep(1)
        r = wsgi_shim("deploy", str(site.site), str(broken), "--wait", "10", "--url", url)
        assert r.returncode == 1 and "no_such_module_in_v2" in r.stderr and "nothing was switched" in r.stderr
        # Any new process from now on (a restart) still loads v1.
        shim_ok("restart", str(site.site), "--wait", "30", "--url", url)
        time.sleep(1)
    result = load.result
    print(result.summary())
    assert result.samples and not only_app(result), result.summary()
    assert set(result.bodies()) == {b"v1"}


def test_maint_deploy_shows_the_page_and_nothing_else(apache: ApacheServer, site_venv: Path) -> None:
    site, url = live_site(apache, "load-maint")
    with Load(url, clients=CLIENTS, limit=180) as load:
        time.sleep(1)
        r = shim_ok("deploy", str(site.site), str(version(site, "v2")), "--maint", "--url", url,
                    "--run", "python -c 'import os; print(\"migrating in\", os.getcwd())'")
        # When the deploy returns, no process of the maintenance page is left.
        assert [http_get(url).body for _ in range(10)] == ["v2"] * 10
        wait_for_body(load, b"v2")
        time.sleep(1)
    result = load.result
    print(result.summary())
    assert "Maintenance mode on" in r.stdout and "migrating in" in r.stdout and "Maintenance mode off" in r.stdout
    assert result.samples and not result.failures(), result.summary()
    kinds = result.counts()
    assert kinds[(503, "maintenance")] >= 1, result.summary()
    # The page was up before the release command ran, and the app came back after.
    first_503 = min(s.start for s in result.samples if s.status == 503)
    assert any(s.body == b"v2" and s.start > first_503 for s in result.samples)
    assert not site.maint_txt.exists()


def _deploy_process(site, src: Path, url: str) -> subprocess.Popen:
    """The deploy as the site's user, directly (no runuser in between: the signal must reach
    wsgi-shim and its children as a dropped SSH session's or a CI timeout's would)."""
    return subprocess.Popen(
        [str(VENV / "bin/wsgi-shim"), "deploy", str(site.site), str(src), "--maint", "--url", url,
         "--run", "sleep 1"],
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        user=SITE_USER, group=PROJECT_GROUP, extra_groups=[PROJECT_GROUP], cwd="/")


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM", "SIGHUP"])
def test_a_deploy_killed_at_a_random_moment_leaves_the_site_serving(apache: ApacheServer, site_venv: Path,
                                                                    signame: str) -> None:
    seed = int(os.environ.get("WSGI_SHIM_KILL_SEED", time.time_ns()))
    delay = random.Random(seed).uniform(0.2, 6.0)
    print(f"{signame} after {delay:.2f} s (WSGI_SHIM_KILL_SEED={seed})")
    site, url = live_site(apache, f"load-{signame.lower()}")
    # Data the live release keeps beside its code, named in [deploy] shared from now on: the
    # killed deploy is the one that moves it to SITE/shared/ while v1 serves it to every request.
    v1 = version(site, "v1-data", DATA_APP.format(name="v1"))
    write_file(v1 / "data/notes.txt", "kept")
    shim_ok("deploy", str(site.site), str(v1), "--wait", "30", "--url", url)
    poll(url, lambda r: r.body == "v1 kept", timeout=30)
    update_config(site, {"deploy": {"shared": ["data/"]}})
    with Load(url, clients=CLIENTS, limit=180) as load:
        time.sleep(1)
        proc = _deploy_process(site, version(site, "v2", DATA_APP.format(name="v2")), url)
        time.sleep(delay)
        os.killpg(proc.pid, getattr(signal, signame))
        out, _ = proc.communicate(timeout=60)
        print(out)
        finished = "\nDeployed " in out  # the signal came after the deploy (it ran its course)
        unborn = "Unpacking" not in out  # ... or before it began (Python still starting)
        if signame != "SIGKILL" and not (finished or unborn) and proc.returncode != 128 + getattr(signal, signame):
            raise AssertionError(f"exit {proc.returncode}:\n{out}")
        if not (finished or unborn) and signame != "SIGKILL":
            assert "undoing" in out or "stopped by" in out, out
            assert not site.maint_txt.exists() and not (site.site / "releases/.journal.json").exists()
        time.sleep(2)  # what visitors get right after the kill, before anyone repairs it
        status = wsgi_shim("status", str(site.site))  # sees and repairs an unfinished deploy
        print(status.stdout, status.stderr)
        poll(url, lambda r: r.status == 200, timeout=30)
        after = shim_ok("deploy", str(site.site), str(version(site, "v3", DATA_APP.format(name="v3"))), "--maint",
                        "--url", url)
        wait_for_body(load, b"v3 kept")
    result = load.result
    print(result.summary())
    print(after.stdout)
    assert result.samples and not result.failures(), result.summary()  # the app or maintenance, never an error
    # Every answer of the app had the data: it was never missing, not even while being moved.
    assert {s.body for s in result.samples if s.status == 200} <= {b"v1 kept", b"v2 kept", b"v3 kept"}
    assert not site.maint_txt.exists() and http_get(url).body == "v3 kept"
    assert (site.site / "shared/data/notes.txt").read_text() == "kept"
    leftovers = [n for n in os.listdir(site.site / "releases") if n.startswith((".partial", ".check", ".journal"))]
    assert leftovers == []
