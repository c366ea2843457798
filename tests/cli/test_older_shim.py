"""A site whose venv holds an older wsgi-shim (0.2.0 as it was before the runtime moved to
shim/runtime/): today's `wsgi-shim check` and `status` still read what that version reports."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.sites import (
    REPO,
    SYSTEM_PYTHON,
    _checked,
    load_like_passenger,
    make_site,
    run_as_site,
    update_config,
    wsgi_shim,
)

pytestmark = pytest.mark.realserver

# The last commit of the flat layout (shim/loader.py, shim/checks.py, ...), as it landed.
FLAT_LAYOUT_COMMIT = "ba1b32b98bd0564ab9504ee274e608697defb116"


def _old_shim_venv(where: Path) -> Path:
    """A venv (stdlib only, the runtime needs nothing more) holding the old shim package."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", FLAT_LAYOUT_COMMIT, "shim"],
                             capture_output=True, check=True).stdout
    venv = where / "old-venv"
    _checked(run_as_site([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)]))
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("shim/")]
        assert any(m.name == "shim/loader.py" for m in members)  # really the old layout
        tar.extractall(site_packages, members=members, filter="data")
    subprocess.run(["chown", "-R", "shimsite:shimproj", str(site_packages / "shim")], check=True)
    return venv


def test_check_and_status_read_what_an_older_shim_reports():
    site = make_site("oldshim", {"app.py": "import requestz\n"})
    venv = _old_shim_venv(site.site)
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})
    # check imports the app in the site's Python, where the old shim runs: its problems come through.
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1
    assert "[app-dependency-missing]" in out.stdout and "requestz" in out.stdout, out.stdout
    # A real start under the old shim writes its start record; today's status reads it.
    page = load_like_passenger(site, python=str(venv / "bin/python")).response
    assert page.code == 500
    status = wsgi_shim("status", str(site.site))
    assert status.returncode == 1
    assert "serving the error page" in status.stdout and "app-dependency-missing" in status.stdout, status.stdout
