"""Debian's real cron daemon runs a [jobs.NAME] job, installed by `wsgi-shim cron`, as the
site's user, in the site's environment, at a minute tick."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shim.ops import logview
from tests.support.accounts import SITE_USER, uid
from tests.support.sites import make_site, update_config, wsgi_shim

pytestmark = pytest.mark.realserver

CRON = "/usr/sbin/cron"
PIDFILE = Path("/run/crond.pid")

JOB = """\
import os
with open("ran-by-cron.txt", "w") as f:
    f.write(f"{os.environ['GREETING']} {os.getcwd()} {os.environ['VIRTUAL_ENV']}")
print("job output line")
"""


def _running() -> bool:
    return subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0


@pytest.fixture
def cron_daemon():
    """The system's cron daemon; started here (and stopped after) when it was not running."""
    assert os.path.exists(CRON), "Debian's cron is not installed (.ci/run installs it)"
    started = False
    if not _running():
        subprocess.run([CRON], check=True)  # daemonises and writes PIDFILE
        started = True
    yield
    if started:
        pid = int(PIDFILE.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)


def test_the_cron_daemon_runs_a_job_as_the_site_user(cron_daemon):
    site = make_site("cron-daemon", {"app.py": "from hello import application\n",
                                     "hello.py": "def application(e, s):\n    s('200 OK', [])\n    return [b'hi']\n",
                                     "job.py": JOB})
    update_config(site, {"environment": {"GREETING": "howdy"},
                         "jobs": {"tick": {"schedule": "* * * * *", "command": "python job.py", "timeout": 60}}})
    before = subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-l"], capture_output=True)
    try:
        out = wsgi_shim("cron", str(site.site))
        assert out.returncode == 0, out.stdout + out.stderr
        result = site.approot / "ran-by-cron.txt"
        deadline = time.monotonic() + 130  # the next minute tick, and cron's own check of its spool
        while time.monotonic() < deadline and not (site.approot / "logs/jobs.jsonl").exists():
            time.sleep(2)
        assert result.exists(), "cron did not run the job within 130 s"
        assert result.stat().st_uid == uid(SITE_USER)
        greeting, cwd, venv = result.read_text().split(" ")
        assert greeting == "howdy" and cwd == str(site.approot) and venv.endswith("/venv")
        time.sleep(1)  # the record is written when the run ends
        record = json.loads((site.approot / "logs/jobs.jsonl").read_text().splitlines()[0])
        assert record["job"] == "tick" and record["exit"] == 0
        entries = [e for e in logview.read_entries(site.approot / "logs/app.log") if e["source"] == "shim.run"]
        assert entries and "job output line" in logview.entry_text(entries[0])
        assert f"user {SITE_USER}" in logview.entry_text(entries[0])
        status = wsgi_shim("status", str(site.site))
        assert "job:         tick (* * * * *): last run " in status.stdout and "exit 0" in status.stdout
    finally:
        wsgi_shim("cron", str(site.site), "--remove")
        if before.returncode == 0:
            subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-"], input=before.stdout)
