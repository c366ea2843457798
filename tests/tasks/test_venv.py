"""venv: the site venv, made for real from a real Python by the task's generated script."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from invoke import Config, Context, MockContext, Result
from invoke.exceptions import Exit

from shim.tasks import python as pytasks

# Debian's interpreter is what site venvs for non-root users are built from here.
BASE = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def context(site: Path, **shim) -> Context:
    settings = {"site": str(site), "python_version": "3.11.2"}
    settings.update(shim)
    return Context(Config(overrides={"shim": settings, "run": {"in_stream": False}}))


@pytest.fixture
def site(tmp_path) -> Path:
    site = tmp_path / "site"
    (site / "www-approot").mkdir(parents=True)
    return site


def loose_paths(root: Path) -> list[str]:
    """Everything under root (root included) that group or other may write to."""
    bad = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            bad.append(f"{path} {stat.filemode(st.st_mode)}")
    return bad


def make_venv(site: Path, capfd, **kwargs) -> str:
    kwargs.setdefault("python", BASE)
    kwargs.setdefault("upgrade_pip", False)
    pytasks.venv(context(site), **kwargs)
    return capfd.readouterr().out


def test_creates_a_write_protected_venv_beside_the_app_root(site, capfd):
    old = os.umask(0o002)  # a group-friendly umask, common on shared hosts
    try:
        out = make_venv(site, capfd)
    finally:
        os.umask(old)
    venv = site / "venv"
    assert f"creating {venv} from {BASE}" in out
    assert f"ready: {venv}" in out
    assert f'passenger_python = "{venv}/bin/python"' in out
    assert (venv / "pyvenv.cfg").is_file()
    assert loose_paths(venv) == []
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import sys; print(sys.prefix)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == str(venv)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "--version"],
                         capture_output=True, text=True, check=False)
    assert pip.returncode == 0 and f"  pip:    {pip.stdout.split()[1]}" in out


def test_second_run_leaves_it_alone_and_restores_write_protection(site, capfd):
    make_venv(site, capfd)
    cfg = site / "venv" / "pyvenv.cfg"
    mtime = cfg.stat().st_mtime_ns
    started = time.monotonic()
    out = make_venv(site, capfd)
    assert time.monotonic() - started < 5
    assert "already exists, made from Python" in out and "left as it is" in out
    assert cfg.stat().st_mtime_ns == mtime
    # Someone loosened it: the next run puts the protection back, and says so.
    (site / "venv" / "bin").chmod(0o777)
    cfg.chmod(0o664)
    out = make_venv(site, capfd)
    assert "removed group/other write permission from 2 paths" in out
    assert loose_paths(site / "venv") == []


@pytest.mark.parametrize("where", ["flag", "config", "symlink"])
def test_refuses_a_venv_inside_the_app_root(site, capfd, where):
    approot = site / "www-approot"
    if where == "flag":
        c, kwargs = context(site), {"path": str(approot / "venv")}
    elif where == "config":
        c, kwargs = context(site, venv=str(approot / "venv")), {}
    else:  # lexically outside, physically inside
        (site / "elsewhere").symlink_to(approot)
        c, kwargs = context(site), {"path": str(site / "elsewhere" / "venv")}
    with pytest.raises(Exit) as exc:
        pytasks.venv(c, python=BASE, upgrade_pip=False, **kwargs)
    assert exc.value.code == 2
    out = capfd.readouterr().out
    assert "refusing to create the venv inside the app root" in out
    assert f"e.g. {site}/venv" in out
    assert not (approot / "venv").exists()


def test_refuses_a_venv_that_would_contain_the_app_root(site, capfd):
    with pytest.raises(Exit) as exc:
        pytasks.venv(context(site), python=BASE, path=str(site), upgrade_pip=False)
    assert exc.value.code == 2
    assert "would contain the app root" in capfd.readouterr().out


def test_custom_approot_name_is_respected(site, capfd):
    (site / "app").mkdir()
    with pytest.raises(Exit):
        pytasks.venv(context(site, approot="app"), python=BASE, path=str(site / "app" / "v"),
                     upgrade_pip=False)
    assert "inside the app root" in capfd.readouterr().out
    # www-approot is just a directory when the app root is called "app".
    pytasks.venv(context(site, approot="app"), python=BASE, path=str(site / "www-approot" / "v"),
                 upgrade_pip=False)


def test_without_a_built_python_says_to_build_one_or_pass_python(site, capfd):
    with pytest.raises(Exit) as exc:
        pytasks.venv(context(site), upgrade_pip=False)
    assert exc.value.code == 2
    out = capfd.readouterr().out
    assert f"no Python at {site}/python-3.11.2/bin/python3.11" in out
    assert "build-python" in out and "--python" in out
    assert not (site / "venv").exists()


def test_default_python_is_the_build_python_result(site, capfd):
    # Stand-in for a build-python prefix: the real one is made by the slow build test.
    bindir = site / "python-3.11.2" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python3.11").symlink_to(os.path.realpath(BASE))
    pytasks.venv(context(site), upgrade_pip=False)
    assert f"from {bindir}/python3.11" in capfd.readouterr().out
    assert (site / "venv" / "bin" / "python").exists()


def test_broken_venv_is_refused_and_recreated_with_force(site, capfd):
    make_venv(site, capfd)
    python = site / "venv" / "bin" / "python"
    python.unlink()
    python.symlink_to(site / "gone" / "python3")  # its base Python was removed
    (site / "venv" / "marker").write_text("installed package stand-in")
    with pytest.raises(Exit) as exc:
        pytasks.venv(context(site), python=BASE, upgrade_pip=False)
    assert exc.value.code == 2
    out = capfd.readouterr().out
    assert "its python does not run" in out and "--force" in out
    out = make_venv(site, capfd, force=True)
    assert "recreating" in out
    assert not (site / "venv" / "marker").exists()
    subprocess.run([str(python), "-c", "pass"], check=True)


def test_venv_from_another_python_is_refused(site, capfd):
    other = sys.executable
    probe = "import os, sys; print(os.path.realpath(sys.base_prefix))"
    bases = {subprocess.run([p, "-c", probe], capture_output=True, text=True,
                            check=True).stdout for p in (BASE, other)}
    if len(bases) == 1:
        pytest.skip("only one Python installation here")
    make_venv(site, capfd)
    with pytest.raises(Exit) as exc:
        pytasks.venv(context(site), python=other, upgrade_pip=False)
    assert exc.value.code == 2
    assert "was made from Python" in capfd.readouterr().out


def test_a_directory_that_is_not_a_venv_is_left_alone(site, capfd):
    (site / "venv").mkdir()
    (site / "venv" / "notes.txt").write_text("mine")
    with pytest.raises(Exit) as exc:
        pytasks.venv(context(site), python=BASE, upgrade_pip=False)
    assert exc.value.code == 2
    assert "exists and is not a venv" in capfd.readouterr().out
    assert (site / "venv" / "notes.txt").read_text() == "mine"


def test_upgrades_pip_or_warns_when_it_cannot(site, capfd):
    out = make_venv(site, capfd, upgrade_pip=True)
    assert "upgrading pip" in out
    # Offline hosts still get a working venv, with a warning instead of a failure.
    assert "  pip:    " in out and "not installed" not in out


def test_everyone_writable_parent_is_warned_about(tmp_path, capfd):
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o777)
    site = parent / "site"
    (site / "www-approot").mkdir(parents=True)
    out = make_venv(site, capfd)
    assert f"WARNING: {parent} is writable by everyone" in out
    assert f"chmod o-w {parent}" in out


# --- command strings ---------------------------------------------------------------------


def mock(**shim) -> MockContext:
    c = MockContext(run=Result("", exited=0), repeat=True)
    c.config.shim = shim
    return c


def test_defaults_come_from_config():
    c = mock(site="/srv/s", python_version="3.11.2")
    pytasks.venv(c)
    command = c.run.call_args[0][0]
    assert command.startswith("sh -c '")
    for part in ("venv=/srv/s/venv", "approot=/srv/s/www-approot",
                 "python=/srv/s/python-3.11.2/bin/python3.11", "upgrade_pip=1", "force=0"):
        assert part in command, part


def test_config_and_flags_override_defaults():
    c = mock(site="/srv/s/", venv="/srv/venvs/s", approot="app", python="/usr/bin/python3",
             python_prefix="/opt/py")
    pytasks.venv(c, upgrade_pip=False, force=True)
    command = c.run.call_args[0][0]
    for part in ("venv=/srv/venvs/s", "approot=/srv/s/app", "python=/usr/bin/python3",
                 "upgrade_pip=0", "force=1"):
        assert part in command, part
    pytasks.venv(c, path="~/v", python="/opt/other/bin/python3")
    command = c.run.call_args[0][0]
    script = shlex.split(command)[2]  # sh -c SCRIPT
    assert "venv='~/v'" in script and "python=/opt/other/bin/python3" in command


def test_site_is_required():
    with pytest.raises(Exit) as exc:
        pytasks.venv(mock())
    assert exc.value.code == 2 and "shim.site" in str(exc.value.message)


def test_python_given_by_name_is_looked_up_on_the_hosts_path(site, capfd):
    name = os.path.basename(BASE)
    pytasks.venv(context(site), python=name, upgrade_pip=False)
    out = capfd.readouterr().out
    assert "creating" in out and f"/{name}" in out
    with pytest.raises(Exit) as exc:
        pytasks.venv(context(site), python="no-such-python9", path=str(site / "v2"))
    assert exc.value.code == 2
    assert "no 'no-such-python9' on this host's PATH" in capfd.readouterr().out
