"""Every command wsgi-shim prints as advice runs when pasted: run here as the site's user in a
shell whose PATH does not hold the site's venv (as on a fresh login), so a bare `wsgi-shim`
would be `command not found`."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import PROJECT_GROUP
from tests.support.sites import BASE, VENV, HELLO_APP, make_site, run_as_site, shared_venv, write_file

pytestmark = pytest.mark.realserver

PLAIN_PATH = "/usr/bin:/bin"


def shim(*args: str) -> subprocess.CompletedProcess:
    return run_as_site([str(VENV / "bin/wsgi-shim"), *args], env={"PATH": PLAIN_PATH})


def paste(line: str) -> subprocess.CompletedProcess:
    """LINE typed into a new shell of the site's user."""
    done = run_as_site(["sh", "-c", line], env={"PATH": PLAIN_PATH})
    assert done.returncode != 127 and "not found" not in done.stderr, (line, done.stderr)
    return done


def after(text: str, marker: str) -> str:
    """The command printed after MARKER (to the end of its line or sentence)."""
    match = re.search(re.escape(marker) + r"\s*(.+?)(?:\.?$)", text, re.M)
    assert match, f"{marker!r} not in:\n{text}"
    return match.group(1).strip()


def test_install_prints_check_and_maint_off_that_run_as_printed():
    shared_venv()
    parent = Path(tempfile.mkdtemp(prefix="printed-", dir=BASE / "sites"))
    parent.chmod(0o755)
    from tests.support.sites import _chown_tree

    _chown_tree(parent)
    site = Site(parent / "site")
    done = shim("install", str(site.site), "--group", PROJECT_GROUP, "--python", str(VENV / "bin/python"))
    assert done.returncode == 0, done.stderr
    line = after(done.stdout, "When your app is in place:")
    assert line == (f"{VENV}/bin/wsgi-shim check {site.site} && {VENV}/bin/wsgi-shim maint off {site.site}")
    write_file(site.approot / "app.py", HELLO_APP)
    ran = paste(line)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert not site.maint_txt.exists()


def test_deploy_and_rollback_print_commands_that_undo_each_other():
    site = make_site("printed-deploy")
    sources = []
    for name in ("v1", "v2"):
        root = site.site.parent / name
        write_file(root / "app.py", HELLO_APP.replace("hello from the app", name))
        sources.append(root)
    first = shim("deploy", str(site.site), str(sources[0]), "--init")
    assert first.returncode == 0, first.stdout + first.stderr
    second = shim("deploy", str(site.site), str(sources[1]))
    assert second.returncode == 0, second.stdout + second.stderr
    back = re.search(r"To go back to \S+: (.+)$", second.stdout, re.M).group(1)
    assert back.startswith(f"{VENV}/bin/wsgi-shim rollback ")
    rolled = paste(back)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    undo = re.search(r"To undo: (.+)$", rolled.stdout, re.M).group(1)
    assert undo.startswith(f"{VENV}/bin/wsgi-shim rollback {site.site} --to ")
    undone = paste(undo)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "Rolled back to" in undone.stdout


def test_status_and_the_start_up_error_page_name_commands_that_run():
    site = make_site("printed-status", {"app.py": "raise RuntimeError('boom at import')\n"})
    from tests.support.sites import load_like_passenger, opt_in_owner

    page = load_like_passenger(site, [{"headers": opt_in_owner(site)}]).response
    assert page.code == 500
    command = re.search(r"then run <code>(.+?)</code>", page.body).group(1)
    assert command == f"{VENV}/bin/wsgi-shim restart {site.approot}"
    assert paste(command).returncode == 0
    status = shim("status", str(site.site))
    line = re.search(r"\((\S+ logs \S+) --id ID shows an error in full\)", status.stdout)
    assert line, status.stdout
    assert line.group(1) == f"{VENV}/bin/wsgi-shim logs {site.site}"
    error_id = re.search(r"error id ([0-9a-f]+)", status.stdout).group(1)
    shown = paste(f"{line.group(1)} --id {error_id}")
    assert shown.returncode == 0 and "boom at import" in shown.stdout, shown.stdout + shown.stderr
