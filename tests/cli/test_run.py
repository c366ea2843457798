"""`wsgi-shim run` as a subprocess run by the site's (non-root) user on real sites: the app's
environment, secrets, working directory and umask; exit status; lock; timeout; the app-log entry."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from shim.ops import logview
from tests.support.accounts import SITE_USER
from tests.support.sites import VENV, make_site, update_config, write_file, wsgi_shim

pytestmark = pytest.mark.realserver

SECRET = "s3cr3t-token-4711-abcdef"

SHOW = """\
import os, sys
print("env", os.environ["GREETING"])
print("secret file", open(os.environ["API_TOKEN_FILE"]).read().strip())
print("cwd", os.getcwd())
print("prefix", sys.prefix)
print("venv", os.environ["VIRTUAL_ENV"])
print("umask", oct(os.umask(0)))
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def _site_with_secret(name: str):
    site = make_site(name, {"app.py": "from hello import application\n",
                            "hello.py": "def application(e, s):\n    s('200 OK', [])\n    return [b'hi']\n",
                            "show.py": SHOW})
    secret = site.site / "secret.txt"
    write_file(secret, SECRET + "\n", 0o600)
    update_config(site, {"environment": {"GREETING": "howdy"},
                         "secret_files": {"API_TOKEN_FILE": str(secret)}})
    return site


def _run_entries(site) -> list[dict]:
    return [e for e in logview.read_entries(site.approot / "logs/app.log") if e["source"] == "shim.run"]


def test_run_uses_the_sites_environment_and_keeps_its_exit_status_and_a_masked_log_entry():
    site = _site_with_secret("run-env")
    out = wsgi_shim("run", str(site.site), "--", "python", "show.py", "3")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "env howdy" in out.stdout
    assert f"cwd {site.approot}" in out.stdout
    assert f"prefix {VENV}" in out.stdout and f"venv {VENV}" in out.stdout
    assert "umask 0o27" in out.stdout  # the app root's group is the project group
    # not at a terminal: the echo is masked like the log
    assert "secret file [redacted]" in out.stdout and SECRET not in out.stdout
    entries = _run_entries(site)
    assert len(entries) == 1
    text = logview.entry_text(entries[0])
    assert entries[0]["level"] == "ERROR"
    assert "exit 3 after" in text and "python show.py 3" in text and f"user {SITE_USER}" in text
    assert "env howdy" in text and "secret file [redacted]" in text
    assert SECRET not in (site.approot / "logs/app.log").read_text()


def test_run_follows_the_release_current_points_to():
    site = _site_with_secret("run-current")
    release = site.site / "releases" / "r1"
    write_file(release / "show.py", SHOW)
    (site.approot / "current").symlink_to(release)
    update_config(site, {"wsgi": {"chdir": "current"}})
    out = wsgi_shim("run", str(site.site), "--", "python", "show.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"cwd {release}" in out.stdout


def test_a_missing_program_and_a_missing_job_are_told_not_tracebacked():
    site = _site_with_secret("run-missing")
    out = wsgi_shim("run", str(site.site), "--", "no-such-program-here")
    assert out.returncode == 127
    assert "program 'no-such-program-here' not found in" in out.stderr and "Traceback" not in out.stderr
    out = wsgi_shim("run", str(site.site), "--job", "nightly")
    assert out.returncode == 2 and "no job 'nightly'" in out.stderr
    out = wsgi_shim("run", str(site.site))
    assert out.returncode == 2 and "no command given" in out.stderr


def test_run_refuses_another_user():
    site = _site_with_secret("run-root")
    out = subprocess.run([str(VENV / "bin/wsgi-shim"), "run", str(site.site), "--", "true"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and f"the site runs as {SITE_USER}" in out.stderr


def test_a_job_runs_its_command_and_is_recorded():
    site = _site_with_secret("run-job")
    update_config(site, {"jobs": {"hello": {"schedule": "0 3 * * *", "command": "python show.py 0"}}})
    out = wsgi_shim("run", str(site.site), "--job", "hello")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "env howdy" in out.stdout
    records = (site.approot / "logs/jobs.jsonl").read_text().splitlines()
    assert len(records) == 1 and '"job": "hello"' in records[0] and '"exit": 0' in records[0]
    assert "job hello" in logview.entry_text(_run_entries(site)[0])


def test_timeout_stops_the_command_and_its_children():
    site = _site_with_secret("run-timeout")
    started = time.monotonic()
    out = wsgi_shim("run", str(site.site), "--timeout", "1", "--", "sh", "-c", "sleep 60 & sleep 60; echo never")
    assert out.returncode == 124, out.stdout + out.stderr
    assert time.monotonic() - started < 30
    assert "stopped after --timeout 1 s" in out.stderr and "never" not in out.stdout
    assert "timed out after" in logview.entry_text(_run_entries(site)[0])
    left = subprocess.run(["pgrep", "-u", SITE_USER, "-f", "sleep 60"], capture_output=True, text=True)
    assert left.stdout == ""


def test_a_second_run_with_the_same_lock_says_so_or_waits():
    site = _site_with_secret("run-lock")
    results: dict[str, subprocess.CompletedProcess] = {}
    marker = site.approot / "first-started"
    first = threading.Thread(target=lambda: results.setdefault("first", wsgi_shim(
        "run", str(site.site), "--lock", "import", "--", "sh", "-c", f"touch {marker}; sleep 4; echo first done")))
    first.start()
    for _ in range(200):
        if marker.exists():
            break
        time.sleep(0.05)
    second = wsgi_shim("run", str(site.site), "--lock", "import", "--", "echo", "second")
    assert second.returncode == 75
    assert "another run holds the lock 'import' (pid" in second.stderr and "--wait-lock" in second.stderr
    assert "second" not in second.stdout
    waited = wsgi_shim("run", str(site.site), "--lock", "import", "--wait-lock", "--", "echo", "third")
    first.join()
    assert results["first"].returncode == 0 and "first done" in results["first"].stdout
    assert waited.returncode == 0 and "third" in waited.stdout and "waiting for the lock" in waited.stderr
    other = wsgi_shim("run", str(site.site), "--lock", "other", "--", "echo", "free")
    assert other.returncode == 0


def test_run_at_a_terminal_passes_keys_through():
    """createsuperuser-style: the command asks, the user types, at a real terminal (script(1))."""
    site = _site_with_secret("run-tty")
    write_file(site.approot / "ask.py", "name = input('name? ')\nprint('hello', name)\n")
    command = f"{VENV}/bin/wsgi-shim run {site.site} -- python ask.py"
    proc = subprocess.Popen(["runuser", "-u", SITE_USER, "--", "script", "-qec", command, "/dev/null"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(2)  # input typed before the prompt would be read all the same, but be realistic
    output, _ = proc.communicate(b"alice\n", timeout=60)
    assert proc.returncode == 0, output
    assert b"hello alice" in output
    text = logview.entry_text(_run_entries(site)[0])
    assert "hello alice" in text and "exit 0" in text


def test_timeout_at_a_terminal():
    site = _site_with_secret("run-tty-timeout")
    command = f"{VENV}/bin/wsgi-shim run {site.site} --timeout 1 -- sh -c 'echo waiting; sleep 60'"
    proc = subprocess.run(["runuser", "-u", SITE_USER, "--", "script", "-qec", command, "/dev/null"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == 124, proc.stdout
    assert b"waiting" in proc.stdout and b"stopped after --timeout 1 s (exit 124)" in proc.stdout, proc.stdout
    assert "timed out after" in logview.entry_text(_run_entries(site)[0])
