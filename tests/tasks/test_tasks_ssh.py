"""The tasks under `fab -H shimsite@127.0.0.1:PORT`, against a real sshd on loopback: key login,
known_hosts checking, commands run by the site's own user in a non-login shell."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

from tests.support.accounts import SITE_USER, gid, uid
from tests.support.sites import BASE, SYSTEM_PYTHON, VENV, make_site, run_as_site, update_config
from tests.tasks.conftest import command_env, preview, stop_session
from tests.tasks.test_preview import serve_cmd

pytestmark = pytest.mark.realserver



def fab(sshd, cwd: Path, *args: str, hosts: str | None = None, **env: str):
    env = command_env(**{"FABRIC_SHIM_KNOWN_HOSTS": str(sshd.known_hosts),
                         "FABRIC_SHIM_VENV": str(VENV), **env})
    result = sshd.fab("-H", hosts or sshd.host(SITE_USER), *args, cwd=cwd, env=env)
    # Whatever happened, the user sees a message, not a Python traceback.
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_check_a_healthy_site(sshd, own_repo):
    site = make_site("ssh-check")
    result = fab(sshd, own_repo, "check", "--site", str(site.site))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK:" in result.stdout


def test_check_lists_problems_and_exits_1(sshd, own_repo):
    site = make_site("ssh-check-bad")
    update_config(site, {"wsgi": {"app": "nosuchmodule.application"}})
    result = fab(sshd, own_repo, "check", "--site", str(site.site))
    assert result.returncode == 1
    assert "nosuchmodule" in result.stdout
    assert "the site on 127.0.0.1 has problems" in result.stderr


def test_maint_on_status_off(sshd, own_repo):
    site = make_site("ssh-maint")
    on = fab(sshd, own_repo, "maint", "on", "--site", str(site.site))
    assert on.returncode == 0, on.stderr
    assert site.maint_txt.exists()
    assert site.maint_txt.stat().st_uid == uid(SITE_USER)  # done by the ssh user, not root
    status = fab(sshd, own_repo, "maint", "status", "--site", str(site.site))
    assert "maintenance mode is on" in status.stdout
    off = fab(sshd, own_repo, "maint", "off", "--site", str(site.site))
    assert off.returncode == 0, off.stderr
    assert not site.maint_txt.exists()


def test_restart_touches_restart_txt(sshd, own_repo):
    site = make_site("ssh-restart")
    before = site.restart_txt.stat().st_mtime
    result = fab(sshd, own_repo, "restart", "--site", str(site.site))
    assert result.returncode == 0, result.stderr
    assert site.restart_txt.stat().st_mtime > before


def test_restart_wait_and_status_against_a_running_site(sshd, own_repo, port, tmp_path):
    site = make_site("ssh-wait")
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        time.sleep(1.1)  # the start record of the first process is clearly older than the touch
        url = server.owner_url()  # the preview lets in only who has its token (the cookie it sets)
        result = fab(sshd, own_repo, "restart", "--wait", "20", "--url", url, "--site",
                     str(site.site))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "restarted:" in result.stdout and "serving the app" in result.stdout
        status = fab(sshd, own_repo, "status", "--site", str(site.site), FABRIC_SHIM_URL=url)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"{server.url}?wsgi-shim-preview=[token] answers 200, serving app" in status.stdout
        assert url.rsplit("=", 1)[1] not in status.stdout + status.stderr
        as_json = fab(sshd, own_repo, "status", "--json", "--site", str(site.site))
        assert json.loads(as_json.stdout)["last_start"]["state"] == "app"


def test_status_of_a_site_showing_its_error_page_exits_non_zero(sshd, own_repo, port, tmp_path):
    site = make_site("ssh-status-error")
    update_config(site, {"wsgi": {"app": "nosuchmodule.application"}})
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        result = fab(sshd, own_repo, "status", "--url", server.owner_url(), "--site", str(site.site))
    assert result.returncode == 1
    assert "serving error" in result.stdout
    assert "the site on 127.0.0.1 is not serving its app" in result.stderr


FAILS_AT_FIRST_REQUEST = """\
import os


def application(environ, start_response):
    with open(os.environ.get("APP_SETTINGS", "/nonexistent/settings.ini")) as f:
        f.read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"configured"]
"""


def test_check_and_restart_wait_read_the_answers_over_fab(sshd, own_repo, port, tmp_path):
    """Issue 17 under `fab -H`: check sends the first request, restart --wait reads the answers."""
    site = make_site("ssh-first-request", {"app.py": FAILS_AT_FIRST_REQUEST})
    result = fab(sshd, own_repo, "check", "--site", str(site.site))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[request-failed]" in result.stdout and "FileNotFoundError" in result.stdout
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        time.sleep(1.1)
        result = fab(sshd, own_repo, "restart", "--wait", "20", "--url", server.owner_url(), "--site",
                     str(site.site))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "serving the app" in out and "but it is failing" in out and "answers 500" in out


def test_two_hosts_at_once(sshd, own_repo):
    site = make_site("ssh-two")
    hosts = f"{sshd.host(SITE_USER, '127.0.0.1')},{sshd.host(SITE_USER, '127.0.0.2')}"
    result = fab(sshd, own_repo, "maint", "status", "--site", str(site.site), hosts=hosts)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("maintenance mode is off") == 2
    before = site.restart_txt.stat().st_mtime
    restart = fab(sshd, own_repo, "restart", "--site", str(site.site), hosts=hosts)
    assert restart.returncode == 0, restart.stderr
    assert restart.stdout.count("restart requested") == 2
    # touch_restart moves the mtime a whole second on per touch: both hosts did theirs.
    assert site.restart_txt.stat().st_mtime >= int(before) + 2


def test_install_copies_the_wheel_up_and_creates_the_site(sshd, own_repo):
    (BASE / "sites").mkdir(mode=0o755, parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix="ssh-install-", dir=BASE / "sites"))
    parent.chmod(0o755)
    os.chown(parent, uid(SITE_USER), gid())
    venv = parent / "venv"
    made = run_as_site([SYSTEM_PYTHON, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    site_dir = parent / "site"

    result = fab(sshd, own_repo, "install", "--site", str(site_dir), "--venv", str(venv))
    assert result.returncode == 0, result.stdout + result.stderr
    copied = re.search(r"copying (wsgi_shim-\S+\.whl) to 127\.0\.0\.1:(\S+)", result.stdout)
    assert copied, result.stdout
    assert not Path(copied.group(2)).exists(), "the remote temporary directory was left behind"
    # The shim is in the venv and the site exists, all owned by the ssh user.
    version = run_as_site([str(venv / "bin/wsgi-shim"), "--version"])
    assert version.returncode == 0 and "wsgi-shim" in version.stdout
    approot = site_dir / "www-approot"
    assert (approot / "passenger_wsgi.py").stat().st_uid == uid(SITE_USER)
    config = tomllib.loads((approot / "config.toml").read_text())
    assert config["passenger"]["passenger_python"] == str(venv / "bin/python")

    # Again, on two hosts at once: the existing site is left alone on each.
    hosts = f"{sshd.host(SITE_USER, '127.0.0.1')},{sshd.host(SITE_USER, '127.0.0.2')}"
    again = fab(sshd, own_repo, "install", "--site", str(site_dir), "--venv", str(venv),
                hosts=hosts)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("exists; left as it is") == 2
    assert "to 127.0.0.1:" in again.stdout and "to 127.0.0.2:" in again.stdout


def test_install_without_a_venv_says_to_make_one(sshd, own_repo):
    result = fab(sshd, own_repo, "install", "--site", f"{BASE}/nothing-here",
                 "--venv", f"{BASE}/nothing-here/venv")
    assert result.returncode == 1
    assert f"No venv at {BASE}/nothing-here/venv on 127.0.0.1" in result.stderr


def test_a_failing_remote_command_gives_its_output_and_a_clear_message(sshd, own_repo):
    result = fab(sshd, own_repo, "maint", "on", "--site", f"{BASE}/no-such-site")
    assert result.returncode == 1
    assert "does not exist" in result.stderr  # wsgi-shim's own message
    assert "maint on failed on 127.0.0.1 (exit 1)" in result.stderr


def test_missing_wsgi_shim_on_the_host_says_how_to_install_it(sshd, own_repo):
    site = make_site("ssh-no-venv")
    result = fab(sshd, own_repo, "restart", "--site", str(site.site), FABRIC_SHIM_VENV="/nope")
    assert result.returncode == 127
    assert "/nope/bin/wsgi-shim was not found" in result.stderr
    assert f"(fab -H {sshd.host(SITE_USER)} install)" in result.stderr  # what the user runs from here


# --- host keys ------------------------------------------------------------------------------


def test_an_unknown_host_is_refused_by_default(sshd, own_repo, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    site = make_site("ssh-hostkey")
    result = fab(sshd, own_repo, "check", "--site", str(site.site),
                 FABRIC_SHIM_KNOWN_HOSTS=str(empty))
    assert result.returncode == 255
    assert f"[127.0.0.1]:{sshd.port} is not in {empty}" in result.stderr
    assert not site.maint_txt.exists()


def test_accept_new_records_an_unknown_host(sshd, own_repo, tmp_path):
    known = tmp_path / "ssh" / "known_hosts"
    site = make_site("ssh-accept-new")
    result = fab(sshd, own_repo, "maint", "status", "--site", str(site.site),
                 FABRIC_SHIM_KNOWN_HOSTS=str(known), FABRIC_SHIM_HOST_KEY_POLICY="accept-new")
    assert result.returncode == 0, result.stderr
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known.read_text()
    # Recorded: from now on the strict default accepts it.
    again = fab(sshd, own_repo, "maint", "status", "--site", str(site.site),
                FABRIC_SHIM_KNOWN_HOSTS=str(known))
    assert again.returncode == 0, again.stderr


def test_hashed_known_hosts_entries_are_understood(sshd, own_repo, tmp_path):
    known = tmp_path / "known_hosts"
    shutil.copy(sshd.known_hosts, known)
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True,
                   capture_output=True)
    assert "127.0.0.1" not in known.read_text()  # hashed, as Debian's ssh writes them
    site = make_site("ssh-hashed")
    result = fab(sshd, own_repo, "maint", "status", "--site", str(site.site),
                 FABRIC_SHIM_KNOWN_HOSTS=str(known))
    assert result.returncode == 0, result.stderr


def test_a_changed_host_key_is_refused(sshd, own_repo, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key}\n")
    for policy in ("strict", "accept-new"):
        result = fab(sshd, own_repo, "maint", "status", "--site", "/srv/x",
                     FABRIC_SHIM_KNOWN_HOSTS=str(known), FABRIC_SHIM_HOST_KEY_POLICY=policy)
        assert result.returncode == 255
        assert "is not the one recorded" in result.stderr


def test_a_refused_login_is_a_clear_message(sshd, own_repo):
    # shimother has no authorized key on this server.
    result = fab(sshd, own_repo, "check", "--site", "/srv/x", hosts=sshd.host("shimother"))
    assert result.returncode == 255
    assert f"Could not log in as shimother@127.0.0.1:{sshd.port}" in result.stderr


def test_fab_from_the_repo_root_too(sshd):
    """`fab` finds the collection through the repo's fabfile.py."""
    site = make_site("ssh-repo-root")
    repo = Path(__file__).resolve().parents[2]
    result = fab(sshd, repo, "maint", "status", "--site", str(site.site))
    assert result.returncode == 0, result.stderr
    assert "maintenance mode is off" in result.stdout



def test_logs_follow_streams_and_stops_with_the_connection(sshd, own_repo, port, tmp_path):
    site = make_site("ssh-logs")
    env = command_env(FABRIC_SHIM_KNOWN_HOSTS=str(sshd.known_hosts), FABRIC_SHIM_VENV=str(VENV))
    out = tmp_path / "fab.log"
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log"):
        with open(out, "wb") as sink:
            follower = subprocess.Popen(
                [sys.executable, "-m", "fabric", "-i", str(sshd.client_key), "-H",
                 sshd.host(SITE_USER), "logs", "--follow", "--site", str(site.site)],
                cwd=own_repo, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while "process started" not in out.read_text(errors="replace"):
                assert follower.poll() is None, out.read_text()
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.2)
        finally:
            stop_session(follower)
    # The pty made the remote `wsgi-shim logs --follow` end with the connection.
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-u", SITE_USER, "-f", "wsgi-shim logs"],
                         capture_output=True, check=False).returncode == 0:
        assert time.monotonic() < deadline, "remote logs --follow outlived the connection"
        time.sleep(0.2)
