"""Python 3.13 on Passenger 6.0.17, whose loader imports `imp` (Python 3.12 removed it): the
imp compatibility module that build-python and venv install, through real Apache + Passenger.

Everything the way a site's owner does it, as the non-root site user with the tasks from a
venv of their own: `inv build-python` builds CPython 3.13.5 from its source tarball (CI fetches
Debian trixie's orig tarball, python.org's Python-3.13.5.tar.xz, with .ci/fetch-python-source and
passes it in WSGI_SHIM_PYTHON313_TARBALL), `inv venv` makes the site venv from it, `inv install`
puts wsgi-shim in and creates the site. Then real Passenger 6.0.17 serves the app on 3.13; with
the module removed, `wsgi-shim check` names the problem and Passenger shows its generic page;
`inv venv` puts the module into the venv and the site serves again; someone else's imp is
never overwritten. The build (about 2.5 minutes on 2 cores) is done once per tree: a later
session finds it built ("nothing to do") and build-python still checks its module.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support import pythons
from tests.support.accounts import PROJECT_GROUP, SITE_USER, gid, uid
from tests.support.apache import ApacheServer, poll
from tests.support.sites import BASE, _lock, run_as_site, write_file
from tests.tasks.conftest import TASKS_PY, tasks_venv  # noqa: F401 - tasks_venv is a fixture

pytestmark = [pytest.mark.realserver, pytest.mark.slow]

VERSION = "3.13.5"
SHORT = "3.13"
# python.org's Python-3.13.5.tar.xz (as the official Docker image pins it); Debian trixie's
# python3.13_3.13.5.orig.tar.xz is that file. .ci/fetch-python-source checks the same digest.
SHA256 = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
PASSENGER_GENERIC = "We're sorry, but something went wrong"
APP = """\
import sys


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("hello from Python %d.%d.%d" % sys.version_info[:3]).encode()]
"""
HELLO = f"hello from Python {VERSION}"
MARKER = "WSGI_SHIM_IMP_COMPAT = 1"


def source_tarball() -> Path:
    return pythons.source_tarball("WSGI_SHIM_PYTHON313_TARBALL", "3.13.5")


@dataclass
class Built:
    root: Path      # the site user's directory for all of it
    repo: Path      # the user's repository: the two-line tasks.py
    prefix: Path
    python: Path
    stdlib_imp: Path
    output: str     # what `inv build-python` printed

    def inv(self, *args: str, timeout: float = 600) -> str:
        """`inv ARGS` as the site user, from the tasks venv; must succeed; its output."""
        done = run_as_site([str(BASE / "tasks-venv/bin/inv"), *args], cwd=self.repo, timeout=timeout)
        assert done.returncode == 0, f"inv {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def build(self) -> str:
        return self.inv("build-python", "--version", VERSION, "--source", str(source_tarball()),
                        "--sha256", SHA256, "--prefix", str(self.prefix), "--jobs", "2",
                        "--workdir", str(self.root / "work"), timeout=3600)


def _site_dir(path: Path) -> Path:
    path.mkdir(mode=0o755, exist_ok=True)
    path.chmod(0o755)
    os.chown(path, uid(), gid())
    return path


@pytest.fixture(scope="module")
def py313(tasks_venv) -> Built:  # noqa: F811 - the fixture imported above
    tarball = source_tarball()
    root = _site_dir(BASE / "py313")
    repo = _site_dir(root / "repo")
    write_file(repo / "tasks.py", TASKS_PY, 0o644)
    prefix = root / f"python-{VERSION}"
    built = Built(root, repo, prefix, prefix / "bin" / f"python{SHORT}",
                  prefix / "lib" / f"python{SHORT}" / "imp.py", "")
    assert os.access(tarball, os.R_OK)
    with _lock("py313"):
        built.output = built.build()
    return built


@pytest.fixture(scope="module")
def site313(py313: Built) -> Site:
    """A site made from the built Python with the tasks: venv, then install (which creates it)."""
    sites = _site_dir(py313.root / "sites")
    site = Site(Path(tempfile.mkdtemp(prefix="site-", dir=sites)) / "site")
    _site_dir(site.site.parent)
    out = py313.inv("venv", "--site", str(site.site), "--python", str(py313.python), "--no-upgrade-pip")
    # The base Python has the module in its standard library: nothing to add to the venv.
    assert f"imp compatibility: already provided by {py313.stdlib_imp}" in out, out
    assert f"ready: {site.site / 'venv'}" in out
    with _lock("venv"):  # this tree's wheel, built by the shared venv (tasks_venv)
        built = next((BASE / "wheels").glob("*.whl"))
        wheel = shutil.copy(built, sites / built.name)
    os.chmod(wheel, 0o644)
    out = py313.inv("install", "--site", str(site.site), "--wheel", str(wheel), "--group", PROJECT_GROUP,
                    "--app", "app.application", timeout=900)
    write_file(site.approot / "app.py", APP)
    site.maint_txt.unlink(missing_ok=True)
    yield site
    shutil.rmtree(site.site.parent, ignore_errors=True)


def venv_python(site: Site) -> Path:
    return site.site / "venv" / "bin" / "python"


def venv_imp(site: Site) -> Path:
    return site.site / "venv" / "lib" / f"python{SHORT}" / "site-packages" / "imp.py"


def serve(apache: ApacheServer, site: Site) -> str:
    name = "imp313"
    if name in apache.sites:
        return apache.site_url(name)
    return apache.serve(name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                        python=venv_python(site))


def check(site: Site) -> tuple[int, list[dict], str]:
    """`wsgi-shim check --json` of the site venv's own wsgi-shim, as the site user."""
    done = run_as_site([str(site.site / "venv/bin/wsgi-shim"), "check", "--json", str(site.site)])
    try:
        problems = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"check printed no JSON ({done.returncode}):\n{done.stdout}\n{done.stderr}") from None
    problems = problems.get("problems", problems) if isinstance(problems, dict) else problems
    return done.returncode, problems, done.stdout


def restart(site: Site) -> None:
    done = run_as_site([str(site.site / "venv/bin/wsgi-shim"), "restart", str(site.site)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_build_python_adds_the_module_and_passenger_6_0_17_serves_python_3_13(
        py313: Built, site313: Site, apache: ApacheServer) -> None:
    out = py313.output
    assert "Passenger 6.0.17 (passenger-config --version) imports 'imp'" in out, out
    assert f"apps on Python {VERSION} need wsgi-shim's imp compatibility module there" in out
    if "done in" in out:  # built in this session (always so in CI): the module is new
        assert "[7/7] smoke test" in out
        assert f"imp compatibility: installed {py313.stdlib_imp}" in out, out
    else:  # built by an earlier session of this tree: build-python still sees to the module
        assert "nothing to do" in out
        assert (f"imp compatibility: installed {py313.stdlib_imp}" in out
                or f"imp compatibility: {py313.stdlib_imp} is up to date" in out), out
    assert MARKER in py313.stdlib_imp.read_text()
    st = py313.stdlib_imp.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (uid(), 0o644)
    # Executable and importable by the site user (not only by root, who ran the tests).
    seen = run_as_site([str(py313.python), "-c", "import imp, sys; print(sys.version.split()[0], imp.__file__)"])
    assert seen.stdout.split() == [VERSION, str(py313.stdlib_imp)], seen.stdout + seen.stderr
    assert not venv_imp(site313).exists()

    code, problems, text = check(site313)
    assert code == 0 and not [p for p in problems if p["code"].startswith("imp-")], text
    url = serve(apache, site313)
    r = poll(url + "/", lambda r: r.status == 200, timeout=60)
    assert r.body == HELLO  # the app, on Python 3.13.5, loaded by Passenger 6.0.17's own loader
    assert "No module named 'imp'" not in apache.error_log_text()


def test_without_the_module_check_names_it_and_passenger_cannot_start_the_app(
        py313: Built, site313: Site, apache: ApacheServer) -> None:
    url = serve(apache, site313)
    poll(url + "/", lambda r: r.status == 200 and r.body == HELLO, timeout=60)
    backup = py313.root / "imp.py.removed"
    shutil.move(py313.stdlib_imp, backup)
    try:
        gone = run_as_site([str(venv_python(site313)), "-c", "import imp"])
        assert "No module named 'imp'" in gone.stderr

        code, problems, text = check(site313)
        assert code != 0, text
        [problem] = [p for p in problems if p["code"] == "imp-missing"]
        assert problem["severity"] == "error"
        assert f"Python is {VERSION} and has no `imp` module" in problem["what"]
        assert "Passenger 6.0.17 loads apps with `imp.load_source`" in problem["what"]
        assert "`inv venv`" in problem["fix"]
        assert problem["where"] == str(venv_python(site313))
        said = run_as_site([str(site313.site / "venv/bin/wsgi-shim"), "check", str(site313.site)])
        assert said.returncode == 1 and "imp-missing" in said.stdout and "inv venv" in said.stdout, said.stdout

        # What a visitor gets once Passenger starts a new process: its own generic page, the app
        # never runs (the failure is in Passenger's loader, before wsgi-shim's code).
        restart(site313)
        r = poll(url + "/", lambda r: r.status == 500, timeout=60)
        assert PASSENGER_GENERIC in r.body and HELLO not in r.body
        assert "No module named 'imp'" in apache.error_log_text()

        # `inv venv` again, for the existing venv: its base Python lacks the module now, so it
        # goes into the venv's site-packages; the venv itself is left as it was.
        out = py313.inv("venv", "--site", str(site313.site), "--python", str(py313.python),
                        "--no-upgrade-pip")
        assert "already exists, made from Python 3.13.5" in out
        assert "Passenger 6.0.17 (passenger-config --version) imports 'imp'" in out
        assert f"imp compatibility: installed {venv_imp(site313)} (for Passenger 6.0.17)" in out, out
        assert MARKER in venv_imp(site313).read_text()
        code, problems, text = check(site313)
        assert code == 0 and not [p for p in problems if p["code"].startswith("imp-")], text
        restart(site313)
        r = poll(url + "/", lambda r: r.status == 200, timeout=60)
        assert r.body == HELLO
    finally:
        if not py313.stdlib_imp.exists():
            shutil.move(backup, py313.stdlib_imp)
        venv_imp(site313).unlink(missing_ok=True)


def test_someone_elses_imp_is_left_alone_and_check_says_what_to_do(
        py313: Built, site313: Site, apache: ApacheServer) -> None:
    backup = py313.root / "imp.py.removed"
    shutil.move(py313.stdlib_imp, backup)
    foreign = venv_imp(site313)
    text = '"""Not wsgi-shim\'s: some package\'s own imp."""\nVERSION = "1.0"\n'
    write_file(foreign, text, 0o644)
    try:
        out = py313.inv("venv", "--site", str(site313.site), "--python", str(py313.python),
                        "--no-upgrade-pip")
        assert (f"already has an 'imp' module that is not wsgi-shim's ({foreign}): left alone") in out, out
        assert foreign.read_text() == text
        code, problems, report = check(site313)
        [problem] = [p for p in problems if p["code"] == "imp-missing"]
        assert f"an `imp` module without load_source ({foreign})" in problem["what"]
        assert problem["fix"].startswith(f"Move {foreign} away")
    finally:
        foreign.unlink(missing_ok=True)
        if not py313.stdlib_imp.exists():
            shutil.move(backup, py313.stdlib_imp)


def test_build_python_again_puts_a_removed_module_back(py313: Built, site313: Site) -> None:
    backup = py313.root / "imp.py.removed"
    shutil.move(py313.stdlib_imp, backup)
    try:
        out = py313.build()
        assert "nothing to do" in out
        assert f"imp compatibility: installed {py313.stdlib_imp}" in out, out
        assert py313.stdlib_imp.read_text() == backup.read_text()
        out = py313.build()
        assert f"imp compatibility: {py313.stdlib_imp} is up to date" in out, out
    finally:
        if not py313.stdlib_imp.exists():
            shutil.move(backup, py313.stdlib_imp)
        backup.unlink(missing_ok=True)
