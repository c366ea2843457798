"""`wsgi-shim install` run as a subprocess by the real site user."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP, SITE_USER, gid, uid
from tests.support.sites import BASE, VENV, load_like_passenger, run_as, shared_venv, wsgi_shim

pytestmark = pytest.mark.realserver


@pytest.fixture
def parent(tmp_path_factory) -> Path:
    shared_venv()
    (BASE / "sites").mkdir(exist_ok=True)
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="install-", dir=BASE / "sites"))
    path.chmod(0o755)
    os.chown(path, uid(), gid())
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_creates_layout_with_safe_modes(parent: Path):
    site = Site(parent / "site")
    out = wsgi_shim("install", str(site.site), "--group", PROJECT_GROUP)
    assert out.returncode == 0, out.stderr
    # Files and dirs belong to the site user; group is the one the dir got (user-private here).
    assert site.approot.owner() == SITE_USER
    for path in (site.approot, site.tmp, site.default_logs):
        assert mode(path) & 0o007 == 0, path           # private: Passenger's core runs as root
    assert mode(site.docroot) & 0o005 == 0o005         # Apache walks the document root
    assert mode(site.site) & 0o001                     # ... and the site directory
    for path in (site.config_toml, site.passenger_wsgi, site.restart_txt, site.maint_txt):
        assert mode(path) & 0o007 == 0, path
        assert mode(path) & 0o600 == 0o600
    for path in (site.site, site.approot, site.tmp, site.docroot, site.config_toml):
        assert not mode(path) & 0o002, path            # nothing world-writable
    # Created under the project group (as Passenger's PassengerGroup would be): safe, so it gets read.
    assert grp.getgrgid(site.config_toml.stat().st_gid).gr_name == PROJECT_GROUP
    assert mode(site.config_toml) == 0o640
    # What the sysadmins need is printed.
    for text in (f"PassengerAppRoot      {site.approot}", "PassengerAppType      wsgi",
                 f"PassengerPython       {VENV}/bin/python", f"PassengerUser         {SITE_USER}",
                 f"PassengerGroup        {PROJECT_GROUP}", f"PassengerRestartDir   {site.tmp}"):
        assert text in out.stdout
    # config.toml parses and documents every key in its header.
    text = site.config_toml.read_text()
    data = tomllib.loads(text)
    assert data["passenger"]["passenger_group"] == PROJECT_GROUP
    assert data["passenger"]["passenger_python"] == f"{VENV}/bin/python"
    header = text.split("[passenger]\npassenger_user")[0]
    assert all(line.startswith("#") or not line for line in header.splitlines())
    for key in ("passenger_user", "passenger_group", "passenger_python", "app", "chdir", "[secret_files]",
                "[environment]", "[maintenance]", "retry_after", "[logging]", "max_bytes", "capture_output",
                "catch_errors", "debug_token_file", "debug_addresses", "redact"):
        assert key in header, key


def test_install_on_a_default_shared_group_withholds_group_access(parent: Path):
    subprocess.run(["groupadd", "-f", "shimshared"], check=True)
    subprocess.run(["usermod", "-g", "shimshared", "-aG", f"{SITE_USER},{PROJECT_GROUP}", SITE_USER], check=True)
    try:
        site = Site(parent / "site")
        os.chown(parent, uid(), grp.getgrnam("shimshared").gr_gid)
        # Run with the default group, as a plain login shell would.
        out = run_as(SITE_USER, "shimshared", [str(VENV / "bin/wsgi-shim"), "install", str(site.site)])
        assert out.returncode == 0, out.stderr
        assert mode(site.config_toml) == 0o600
        assert mode(site.approot) == 0o700
        assert "is your default group, shared with other users" in out.stderr
    finally:
        subprocess.run(["usermod", "-g", SITE_USER, SITE_USER], check=True)


def test_install_prints_apache_snippet_and_quotes_odd_paths(parent: Path):
    odd = parent / 'my "site" dir'
    out = wsgi_shim("install", str(odd), "--apache", "--group", PROJECT_GROUP)
    assert out.returncode == 0, out.stderr
    site = Site(odd)
    assert f'PassengerAppRoot "{str(site.approot).replace(chr(34), chr(92) + chr(34))}"' in out.stdout
    assert "PassengerAppType wsgi" in out.stdout and "PassengerGroup shimproj" in out.stdout
    data = tomllib.loads(site.config_toml.read_text())
    assert data["passenger"]["passenger_app_root"] == str(site.approot)


def test_install_never_overwrites(parent: Path):
    site = Site(parent / "site")
    site.approot.mkdir(parents=True)
    (site.approot / "mine.py").write_text("precious")
    out = wsgi_shim("install", str(site.site))
    assert out.returncode == 1
    assert "already exists" in out.stderr and "never overwrites" in out.stderr
    assert (site.approot / "mine.py").read_text() == "precious"
    assert not site.docroot.exists()


def test_install_rejects_relative_site_and_bad_names(parent: Path):
    assert "absolute" in wsgi_shim("install", "relative/site").stderr
    out = wsgi_shim("install", str(parent / "s"), "-a", "x/y")
    assert out.returncode == 1 and "single directory name" in out.stderr
    out = wsgi_shim("install", str(parent / "s"), "--group", "no-such-group")
    assert out.returncode == 1 and "no group 'no-such-group'" in out.stderr
    assert not (parent / "s").exists()


def test_install_failing_midway_leaves_nothing_behind(tmp_path: Path):
    """A file system that runs out of inodes half-way: everything created is removed again."""
    mnt = BASE / "tiny-fs"
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nr_inodes=7,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        os.chown(mnt, uid(), gid())
        out = wsgi_shim("install", str(mnt / "site"))
        assert out.returncode == 1
        assert "No space left on device" in out.stderr and "Nothing was left behind" in out.stderr
        assert "Traceback" not in out.stderr
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_installed_site_shows_maintenance_until_maint_off(parent: Path):
    site = Site(parent / "site")
    assert wsgi_shim("install", str(site.site), "--group", PROJECT_GROUP).returncode == 0
    page = load_like_passenger(site).response
    assert page.code == 503 and page.kind == "maintenance"
    assert page.headers["Retry-After"] == "300"
    assert "Down for maintenance" in page.body
