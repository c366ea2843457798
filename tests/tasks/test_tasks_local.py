"""The tasks under `inv`, in a site repository of one's own, against real sites on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib

import pytest

from tests.support.sites import VENV, make_site, update_config
from tests.tasks.conftest import command_env, inv, inv_as_site, preview
from tests.tasks.test_preview import serve_cmd

pytestmark = pytest.mark.realserver



def run(repo, *args: str, **env: str):
    """`inv ARGS` as the site's user in the site's own repository (site_repo), or, for a repo
    of root's (own_repo), as root."""
    if repo.is_relative_to("/srv"):
        result = inv_as_site(repo, *args, INVOKE_SHIM_VENV=str(VENV), **env)
    else:
        result = inv(*args, cwd=repo, env=command_env(INVOKE_SHIM_VENV=str(VENV), **env))
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_check(site_repo):
    good = make_site("inv-check")
    result = run(site_repo, "check", INVOKE_SHIM_SITE=str(good.site))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK:" in result.stdout

    bad = make_site("inv-check-bad")
    update_config(bad, {"wsgi": {"app": "nosuchmodule.application"}})
    result = run(site_repo, "check", "--json", INVOKE_SHIM_SITE=str(bad.site))
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert any("nosuchmodule" in p["what"] + p["detail"] for p in problems), problems
    assert "has problems" in result.stderr


def test_maint_and_restart(site_repo):
    site = make_site("inv-maint")
    env = {"INVOKE_SHIM_SITE": str(site.site)}
    assert run(site_repo, "maint", "on", **env).returncode == 0
    assert site.maint_txt.exists()
    assert "maintenance mode is on" in run(site_repo, "maint", "status", **env).stdout
    assert run(site_repo, "maint", "off", **env).returncode == 0
    assert not site.maint_txt.exists()
    bad = run(site_repo, "maint", "sideways", **env)
    assert bad.returncode == 2 and "expected on, off or status" in bad.stderr

    before = site.restart_txt.stat().st_mtime
    assert run(site_repo, "restart", **env).returncode == 0
    assert site.restart_txt.stat().st_mtime > before


def test_restart_wait_status_and_logs_against_the_preview(site_repo, port, tmp_path):
    site = make_site("inv-wait")
    with preview(serve_cmd(site, port), port, tmp_path / "serve.log") as server:
        time.sleep(1.1)
        env = {"INVOKE_SHIM_SITE": str(site.site), "INVOKE_SHIM_URL": server.owner_url()}
        result = run(site_repo, "restart", "--wait", **env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "serving the app" in result.stdout
        status = run(site_repo, "status", **env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "serving app" in status.stdout
        logs = run(site_repo, "logs", **env)
        assert logs.returncode == 0, logs.stderr
        assert "process started: state=app" in logs.stdout


def test_restart_wait_times_out_with_a_clear_message(site_repo):
    site = make_site("inv-wait-timeout")
    result = run(site_repo, "restart", "--wait", "2", INVOKE_SHIM_SITE=str(site.site))
    assert result.returncode == 1
    assert "no new process started" in result.stderr
    assert "restart failed (exit 1)" in result.stderr


def test_install_builds_this_checkout_into_a_new_venv_and_creates_the_site(own_repo, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site_dir = tmp_path / "site"
    result = run(own_repo, "install", "--site", str(site_dir), "--venv", str(venv))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (venv / "bin" / "wsgi-shim").exists()
    config = tomllib.loads((site_dir / "www-approot" / "config.toml").read_text())
    assert config["passenger"]["passenger_python"] == str(venv / "bin" / "python")
    again = run(own_repo, "install", "--site", str(site_dir), "--venv", str(venv))
    assert again.returncode == 0, again.stderr
    assert "exists; left as it is" in again.stdout


def test_install_from_tasks_installed_as_a_wheel(site_repo, tasks_venv):
    """A fresh access host: the tasks come from this checkout's wheel in a venv of their own
    (docs/tasks.md), no checkout anywhere. `inv install` never falls back to the package index
    (PyPI's wsgi-shim is the older 0.1.0): it asks for the wheel, then installs that one."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from tests.support.accounts import SITE_USER, gid, uid
    from tests.support.sites import BASE, SYSTEM_PYTHON, _lock, run_as_site

    home = Path(tempfile.mkdtemp(prefix="fresh-host-", dir=BASE))
    home.chmod(0o755)
    os.chown(home, uid(SITE_USER), gid())
    with _lock("venv"):
        built = next((BASE / "wheels").glob("*.whl"))
        wheel = home / built.name
        shutil.copy(built, wheel)
    wheel.chmod(0o644)
    venv, site_dir = home / "venv", home / "site"
    made = run_as_site([SYSTEM_PYTHON, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    try:
        refused = inv_as_site(site_repo, "install", "--site", str(site_dir), "--venv", str(venv))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "these tasks come from an installed wsgi-shim" in refused.stderr
        assert "--wheel FILE" in refused.stderr and "0.1.0" in refused.stderr
        assert not (venv / "bin/wsgi-shim").exists()

        done = inv_as_site(site_repo, "install", "--site", str(site_dir), "--venv", str(venv),
                           "--wheel", str(wheel))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"installed {wheel.name} into {venv}" in done.stdout
        version = run_as_site([str(venv / "bin/wsgi-shim"), "--version"])
        assert version.returncode == 0 and "0.2.0" in version.stdout, version.stdout
        assert (site_dir / "www-approot" / "passenger_wsgi.py").stat().st_uid == uid(SITE_USER)
    finally:
        shutil.rmtree(home, ignore_errors=True)
