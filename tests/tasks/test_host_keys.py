"""Every task checks the host key under `fab -H` (issue 9, point 8): each one, build-python and
venv included, run against the real sshd with an unknown and with a changed host key, is
refused with a clear message before it logs in, let alone runs anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shim.tasks import ns
from tests.support.accounts import SITE_USER
from tests.tasks.conftest import command_env

pytestmark = pytest.mark.realserver

SITE = "/srv/wsgi-shim-host-key-test/site"

# Arguments that would make each task do real work on the host if it got that far.
TASK_ARGS: dict[str, list[str]] = {
    "install": ["--site", SITE],
    "check": ["--site", SITE],
    "maint": ["on", "--site", SITE],
    "restart": ["--site", SITE],
    "status": ["--site", SITE],
    "logs": ["--site", SITE],
    "serve": ["--site", SITE],
    "demo": ["--port", "1"],
    "deploy": ["--site", SITE],
    "rollback": ["--site", SITE],
    "releases": ["--site", SITE],
    "build-python": ["--site", SITE, "--version", "3.11.2"],
    "venv": ["--site", SITE, "--python", "/usr/bin/python3"],
    "run": ["--site", SITE, "--command", "touch /tmp/ran"],
    "cron": ["--site", SITE],
    "alert": ["--site", SITE],
}


def test_the_table_covers_every_task():
    assert set(TASK_ARGS) == set(ns.task_names)


def logins(sshd) -> int:
    return sshd.log_text().count("Accepted publickey")


def fab(sshd, cwd: Path, known_hosts: Path, *args: str) -> subprocess.CompletedProcess:
    env = command_env(FABRIC_SHIM_KNOWN_HOSTS=str(known_hosts))
    return sshd.fab("-H", sshd.host(SITE_USER), *args, cwd=cwd, env=env, timeout=120)


@pytest.fixture
def changed_key(sshd, tmp_path) -> Path:
    """known_hosts that records another key for the test sshd's address."""
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts-changed"
    known.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key}\n")
    return known


@pytest.mark.parametrize("name", sorted(TASK_ARGS))
def test_unknown_host_key_is_refused_by_every_task(sshd, own_repo, tmp_path, name):
    empty = tmp_path / "known_hosts-empty"
    empty.write_text("")
    before = logins(sshd)
    result = fab(sshd, own_repo, empty, name, *TASK_ARGS[name])
    assert result.returncode == 255, result.stdout + result.stderr
    assert f"[127.0.0.1]:{sshd.port} is not in {empty}" in result.stderr
    assert "refusing to connect" in result.stderr
    assert "Traceback" not in result.stderr
    assert logins(sshd) == before, "the task logged in although the host key is unknown"


@pytest.mark.parametrize("name", sorted(TASK_ARGS))
def test_changed_host_key_is_refused_by_every_task(sshd, own_repo, changed_key, name):
    before = logins(sshd)
    result = fab(sshd, own_repo, changed_key, name, *TASK_ARGS[name])
    assert result.returncode == 255, result.stdout + result.stderr
    assert f"The host key of [127.0.0.1]:{sshd.port} is not the one recorded in {changed_key}" \
        in result.stderr
    assert "ssh-keygen -R" in result.stderr and "Traceback" not in result.stderr
    assert logins(sshd) == before, "the task logged in although the host key changed"
