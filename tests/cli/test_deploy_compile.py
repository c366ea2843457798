"""The deploy byte-compiles the release before the check, so no visitor's request compiles."""

from __future__ import annotations

import pytest

from tests.cli.test_deploy import app_source, current, deployed_site, source_dir
from tests.cli.test_shared_paths import ok
from tests.support.sites import wsgi_shim

pytestmark = pytest.mark.realserver

FILES = {
    "app.py": app_source("v2"),
    "views/__init__.py": "",
    "views/lazy.py": "X = 1\n",          # imported only by a request: the check never imports it
    "templates/page.py": "{% block %}\n",  # not Python: noted, not fatal
}


def test_deploy_compiles_what_the_check_does_not_import_and_no_compile_skips_it():
    site = deployed_site("deploy-compile")
    out = ok(wsgi_shim("deploy", str(site.site), str(source_dir(site, "v2", FILES))))
    release = site.site / "releases" / current(site)
    assert "Compiling the release to bytecode" in out
    assert (release / "views/__pycache__/lazy.cpython-311.pyc").is_file()
    assert "note: *** Error compiling" in out and "templates/page.py" in out

    out = ok(wsgi_shim("deploy", str(site.site), str(source_dir(site, "v3", FILES)), "--no-compile"))
    release = site.site / "releases" / current(site)
    assert "Compiling" not in out
    assert not (release / "views/__pycache__").exists()
    assert (release / "__pycache__").is_dir()  # the check's import compiled app.py only
