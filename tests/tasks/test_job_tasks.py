"""inv run / cron / alert as the site's user, and `fab -H` run against the real sshd (with a
terminal: keys typed here reach the command on the host)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

import pytest

from tests.support.accounts import SITE_USER
from tests.support.sites import VENV, make_site, update_config
from tests.tasks.conftest import command_env, inv_as_site

pytestmark = pytest.mark.realserver

SHOW = "import os, sys\nprint('greeting', os.environ['GREETING'], os.getcwd())\nsys.exit(int(sys.argv[1]))\n"


def _site(name: str):
    site = make_site(name, {"app.py": "from hello import application\n",
                            "hello.py": "def application(e, s):\n    s('200 OK', [])\n    return [b'hi']\n",
                            "show.py": SHOW,
                            "ask.py": "name = input('name? ')\nprint('hello', name)\n"})
    update_config(site, {"environment": {"GREETING": "howdy"},
                         "jobs": {"show": {"schedule": "@daily", "command": "python show.py 0"}},
                         "alerts": {"mail": "owner@example.org", "smtp": "127.0.0.1:9"}})
    return site


def _inv(repo, site, *args: str):
    result = inv_as_site(repo, *args, INVOKE_SHIM_VENV=str(VENV), INVOKE_SHIM_SITE=str(site.site))
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_inv_run_cron_and_alert(site_repo):
    site = _site("inv-jobs")
    out = _inv(site_repo, site, "run", "--command", "python show.py 3")
    assert out.returncode == 3 and f"greeting howdy {site.approot}" in out.stdout
    assert "run failed (exit 3)" in out.stderr
    assert _inv(site_repo, site, "run", "--job", "show").returncode == 0
    both = _inv(site_repo, site, "run", "--command", "python show.py 0", "--job", "show")
    assert both.returncode == 2 and "one of them" in both.stderr
    before = subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-l"], capture_output=True)
    try:
        shown = _inv(site_repo, site, "cron", "--show")
        assert f"run {site.site} --job show" in shown.stdout and "alert" in shown.stdout
        assert _inv(site_repo, site, "cron").returncode == 0
        listed = subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-l"], capture_output=True, text=True)
        assert f"@daily {VENV}/bin/wsgi-shim run {site.site} --job show" in listed.stdout
        assert _inv(site_repo, site, "cron", "--remove").returncode == 0
    finally:
        if before.returncode == 0:
            subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-"], input=before.stdout)
        else:
            subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-r"], capture_output=True)
    dry = _inv(site_repo, site, "alert", "--dry-run")
    assert dry.returncode == 0 and "Nothing new" in dry.stdout


def test_fab_run_at_a_terminal_reaches_the_command_on_the_host(sshd, own_repo):
    site = _site("fab-run")
    env = command_env(FABRIC_SHIM_KNOWN_HOSTS=str(sshd.known_hosts), FABRIC_SHIM_VENV=str(VENV))
    plain = sshd.fab("-H", sshd.host(SITE_USER), "run", "--command", "python show.py 0", "--site", str(site.site),
                     cwd=own_repo, env=env)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert f"greeting howdy {site.approot}" in plain.stdout
    fab = [sys.executable, "-m", "fabric", "-i", str(sshd.client_key), "-H", sshd.host(SITE_USER), "run",
           "--command", "python ask.py", "--site", str(site.site)]
    proc = subprocess.Popen(["script", "-qec", shlex.join(fab), "/dev/null"], cwd=own_repo, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(3)
    output, _ = proc.communicate(b"bob\n", timeout=120)
    assert proc.returncode == 0, output
    assert b"hello bob" in output
    shown = sshd.fab("-H", sshd.host(SITE_USER), "cron", "--show", "--site", str(site.site), cwd=own_repo, env=env)
    assert shown.returncode == 0 and f"run {site.site} --job show" in shown.stdout, shown.stdout + shown.stderr
