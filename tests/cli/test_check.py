"""`wsgi-shim check` as a subprocess run by the site's user, on real sites."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.support.sites import HELLO_APP, load_like_passenger, make_site, update_config, wsgi_shim

pytestmark = pytest.mark.realserver

NOISY_APP = """\
import logging, os, sys
print("{not json] hello from import time")
print("x" * 200000)
sys.stderr.write("noise on stderr\\n")
os.write(1, b"raw bytes on fd 1 \\xff\\n")
os.write(2, b"raw bytes on fd 2\\n")
logging.getLogger("app").warning("a warning at import")
""" + HELLO_APP


def test_an_app_that_prints_at_import_passes_check():
    """The probe reports on a channel of its own: what the app prints cannot garble it."""
    site = make_site("noisy", {"app.py": NOISY_APP})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "probe-failed" not in out.stdout
    assert f"OK: {site.approot} would serve its app" in out.stdout
    data = json.loads(wsgi_shim("check", str(site.site), "--json").stdout)
    assert data["ok"] is True and data["problems"] == []
    assert load_like_passenger(site).response.body == "hello from the app"  # and it really serves


def test_an_app_that_exits_the_process_at_import_is_reported():
    site = make_site("exits", {"app.py": "import os\nprint('bye')\nos._exit(3)\n"})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1
    assert "[probe-failed]" in out.stdout and "exited (code 3) without reporting" in out.stdout
    assert "Traceback" not in out.stderr


def test_check_goes_on_past_config_problems_to_the_import():
    """A misspelt key and a missing module, in one run (not one after the other)."""
    site = make_site("goeson", {"app.py": "import requestz\n" + HELLO_APP})
    update_config(site, {"wsgi": {"chidr": "."}})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1
    assert "[config-unknown-key] Unknown key 'chidr' in [wsgi]. Did you mean 'chdir'?" in out.stdout
    assert "[app-dependency-missing]" in out.stdout and "'requestz'" in out.stdout
    codes = [p["code"] for p in json.loads(wsgi_shim("check", str(site.site), "--json").stdout)["problems"]]
    assert codes.count("config-unknown-key") == 1 and codes.count("app-dependency-missing") == 1


def test_check_no_import_says_what_it_did_not_check():
    site = make_site("noimport", {"app.py": "import requestz\n" + HELLO_APP})
    out = wsgi_shim("check", str(site.site), "--no-import")
    assert out.returncode == 0
    assert "would serve its app" not in out.stdout
    assert "not imported (--no-import)" in out.stdout
    data = json.loads(wsgi_shim("check", str(site.site), "--no-import", "--json").stdout)
    assert data["imported"] is False
    assert "import of the app" in data["not_checked"][0]


def test_check_no_import_says_so_also_when_it_found_problems():
    site = make_site("noimportbad", {"app.py": "import requestz\n" + HELLO_APP})
    update_config(site, {"wsgi": {"chidr": "."}})
    out = wsgi_shim("check", str(site.site), "--no-import")
    assert out.returncode == 1
    assert "[config-unknown-key]" in out.stdout and "requestz" not in out.stdout
    assert "not imported (--no-import)" in out.stdout, out.stdout


def test_check_does_not_wait_for_a_process_the_app_starts_at_import():
    """A worker started at import keeps the probe's inherited stdout/stderr open: check must
    still answer when the probe is done (it waited for the worker to exit, up to 300 s)."""
    worker = ("import os, subprocess\n"
              "p = subprocess.Popen(['sleep', '3600'])\n"
              "open(os.path.join(os.path.dirname(__file__), 'worker.pid'), 'w').write(str(p.pid))\n")
    site = make_site("worker", {"app.py": worker + HELLO_APP})
    try:
        out = wsgi_shim("check", str(site.site), timeout=120)  # a TimeoutExpired here is the bug
        assert out.returncode == 0 and "would serve its app" in out.stdout, out.stdout + out.stderr
    finally:
        pid = site.approot / "worker.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGKILL)
