"""build-python and venv: the Python a site runs on, and the site's virtual environment.

Both tasks are thin: shim/ops/buildpython.py assembles a POSIX sh script from the files in
shim/ops/scripts/ and the remote helper runs it, so the same task works here under `inv` and on
the access host under `fab -H host` (host key checked first, like every task), where only a
plain shell, a downloader, tar, make and a C compiler are needed.
"""

from __future__ import annotations

from invoke.exceptions import Exit

from shim.ops import buildpython
from shim.tasks.config import setting
from shim.tasks.flags import SITE_HELP, shim_task
from shim.tasks.remote import run_script, site_dir, site_paths


def _version(c, version: str | None) -> str:
    version = str(setting(c, "python_version", version))
    try:
        buildpython.parse_version(version)
    except ValueError as exc:
        raise Exit(f"build-python: {exc}", code=2) from None
    return version


def _prefix(c, prefix: str | None, site: str | None, version: str) -> str:
    prefix = str(setting(c, "python_prefix", prefix))
    if prefix:
        return prefix
    if not setting(c, "site", site):
        raise Exit("No prefix for the Python build: set shim.python_prefix (or shim.site, whose "
                   "python-X.Y.Z directory is the default), or pass --prefix DIR / --site DIR.",
                   code=2)
    return buildpython.default_prefix(site_dir(c, site), version)


IMP_HELP = ("add the imp module Passenger before 6.0.19 needs on Python 3.12+: auto (when the "
            "host's Passenger is older or unknown), yes, no (default: config shim.imp_compat, auto)")


def _imp_compat(c, given: str | None, task: str) -> str:
    value = setting(c, "imp_compat", given)
    if isinstance(value, bool):  # YAML's reading of a bare yes / no
        value = "yes" if value else "no"
    value = str(value).strip().lower()
    if value not in buildpython.IMP_COMPAT:
        raise Exit(f"{task}: --imp-compat must be auto, yes or no, not {given!r}", code=2)
    return value


@shim_task(help={
    "version": "CPython release X.Y.Z to build (default: config shim.python_version, 3.11.2)",
    "prefix": "install directory (default: config shim.python_prefix, else SITE/python-X.Y.Z)",
    "source": "tarball URL or file on the target host (default: python.org's source tarball)",
    "sha256": "expected sha256 of the tarball; needed for releases the built-in table lacks "
              f"(it knows {buildpython.known_releases()})",
    "jobs": "parallel make jobs (default: the host's CPU count, at most 4)",
    "optimize": "configure --enable-optimizations --with-lto: a faster Python, a much slower build",
    "force": "rebuild even if PREFIX already holds a working build of this version",
    "workdir": "download cache, build tree and log (default: config shim.python_build_dir, "
               "else ~/.cache/wsgi-shim/build-python)",
    "site": SITE_HELP + "; only used for the default prefix",
    "imp-compat": IMP_HELP,
})
def build_python(c, version=None, prefix=None, source=None, sha256=None, jobs=0, optimize=False,
                 force=False, workdir=None, site=None, imp_compat=None):
    """Build CPython into a prefix: download, verify, make, install, smoke-test.

    Fetches python.org's source tarball (or --source) showing bytes and rate as it comes,
    refuses it unless its sha256 matches the built-in table or --sha256, then configure / make /
    make install, and checks that ssl, sqlite3, ctypes, zlib and venv work, naming the -dev
    package for anything missing. A prefix already holding a working build of the version is
    left alone. On Python 3.12+ it adds the imp module that Passenger before 6.0.19 needs to
    the new Python's standard library (see --imp-compat). The full log is kept in the work
    directory; on failure its last lines and its path are printed.

    Example: inv build-python --version 3.11.9
    """
    version = _version(c, version)
    try:
        request = buildpython.BuildRequest(
            version=version,
            prefix=_prefix(c, prefix, site, version),
            source=source or "",
            sha256=sha256 or "",
            jobs=int(jobs or 0),
            optimize=bool(optimize),
            force=bool(force),
            workdir=str(setting(c, "python_build_dir", workdir)),
            passenger_version=str(setting(c, "passenger_version")),
            imp_compat=_imp_compat(c, imp_compat, "build-python"),
        )
        script = buildpython.build_script(request)
    except ValueError as exc:
        raise Exit(f"build-python: {exc}", code=2) from None
    run_script(c, script)


@shim_task(help={
    "python": "interpreter to build the venv from (default: config shim.python, else the "
              "build-python result PREFIX/bin/pythonX.Y)",
    "path": "where the venv goes (default: config shim.venv, else SITE/venv); never inside the "
            "app root",
    "site": SITE_HELP,
    "force": "recreate a venv that was made from another (or a vanished) Python; removes its "
             "installed packages",
    "upgrade-pip": "upgrade pip in a new venv (default on; --no-upgrade-pip when offline)",
    "imp-compat": IMP_HELP,
})
def venv(c, python=None, path=None, site=None, force=False, upgrade_pip=True, imp_compat=None):
    """Create the site's venv from the built Python: write-protected, outside the app root.

    Uses the build-python result (or --python), refuses a venv inside the app root, upgrades
    pip, removes group/other write permission, and prints the passenger_python to use. An
    existing venv made from the same Python is left alone. On Python 3.12+ whose base lacks it,
    it adds the imp module Passenger before 6.0.19 needs to the venv (see --imp-compat).

    Example: inv venv --python /usr/bin/python3.11
    """
    p = site_paths(c, site, path)
    python = str(setting(c, "python", python))
    if not python:
        version = _version(c, None)
        python = buildpython.python_in_prefix(_prefix(c, None, p.site, version), version)
    request = buildpython.VenvRequest(venv=p.venv, approot=p.approot, python=python,
                                      upgrade_pip=bool(upgrade_pip), force=bool(force),
                                      passenger_version=str(setting(c, "passenger_version")),
                                      imp_compat=_imp_compat(c, imp_compat, "venv"))
    run_script(c, buildpython.venv_script(request))
