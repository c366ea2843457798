"""build-python and venv: the Python a site runs on, and the site's virtual environment.

Both tasks are thin: shim/buildpython.py writes a POSIX sh script and ``c.run`` runs it, so the
same task works here under `inv` and on the access host under `fab -H host` (where only a
plain shell, a downloader, tar, make and a C compiler are needed).

Settings (config ``shim.*``): site, venv, approot, python_version, python_prefix, python,
passenger_version, python_build_dir.
"""

from __future__ import annotations

import shlex

from invoke import task
from invoke.exceptions import Exit

from shim.ops import buildpython


def _cfg(c) -> dict:
    return c.config.get("shim", {}) or {}


def _pick(c, key: str, given, default=""):
    """The flag if given, else config shim.KEY, else default."""
    if given not in (None, ""):
        return given
    value = _cfg(c).get(key)
    return default if value in (None, "") else value


def _version(c, version: str) -> str:
    version = str(_pick(c, "python_version", version, "3.11.2"))
    try:
        buildpython.parse_version(version)
    except ValueError as exc:
        raise Exit(f"build-python: {exc}", code=2) from None
    return version


def _prefix(c, prefix: str, site: str, version: str) -> str:
    prefix = str(_pick(c, "python_prefix", prefix))
    if prefix:
        return prefix
    site = str(_pick(c, "site", site))
    if not site:
        raise Exit("No prefix for the Python build: set shim.python_prefix (or shim.site, whose "
                   "python-X.Y.Z directory is the default), or pass --prefix DIR / --site DIR.",
                   code=2)
    return buildpython.default_prefix(site, version)


def _run_script(c, script: str) -> None:
    """Run the generated script with `sh -c`; a failure ends the task with the script's exit
    code (the script has already said what went wrong and what to do)."""
    result = c.run("sh -c " + shlex.quote(script), in_stream=False, warn=True)
    if result is not None and result.exited:
        raise Exit(code=result.exited)


@task(auto_shortflags=False, help={
    "version": "CPython release X.Y.Z to build (default: config shim.python_version, 3.11.2)",
    "prefix": "install directory (default: config shim.python_prefix, else SITE/python-X.Y.Z)",
    "source": "tarball URL or file on the target host (default: python.org's Python-X.Y.Z.tgz)",
    "sha256": "expected sha256 of the tarball; needed for releases the built-in table lacks",
    "jobs": "parallel make jobs (default: the host's CPU count, at most 4)",
    "optimize": "configure --enable-optimizations --with-lto: a faster Python, a much slower build",
    "force": "rebuild even if PREFIX already holds a working build of this version",
    "workdir": "download cache, build tree and log (default: config shim.python_build_dir, "
               "else ~/.cache/wsgi-shim/build-python)",
    "site": "site directory (default: config shim.site); only used for the default prefix",
})
def build_python(c, version="", prefix="", source="", sha256="", jobs=0, optimize=False,
                 force=False, workdir="", site=""):
    """Build CPython into a prefix: download, verify, make, install, smoke-test.

    Fetches python.org's source tarball (or --source), refuses it unless its sha256 matches the
    built-in table or --sha256, then configure / make / make install, and checks that ssl,
    sqlite3, ctypes, zlib and venv work, naming the -dev package for anything missing. A prefix
    already holding a working build of the version is left alone. The full log is kept in the
    work directory; on failure its last lines and its path are printed.
    """
    version = _version(c, version)
    try:
        request = buildpython.BuildRequest(
            version=version,
            prefix=_prefix(c, prefix, site, version),
            source=source,
            sha256=sha256,
            jobs=int(jobs or 0),
            optimize=bool(optimize),
            force=bool(force),
            workdir=str(_pick(c, "python_build_dir", workdir)),
            passenger_version=str(_pick(c, "passenger_version", "")),
        )
        script = buildpython.build_script(request)
    except ValueError as exc:
        raise Exit(f"build-python: {exc}", code=2) from None
    _run_script(c, script)


@task(auto_shortflags=False, help={
    "python": "interpreter to build the venv from (default: config shim.python, else the "
              "build-python result PREFIX/bin/pythonX.Y)",
    "path": "where the venv goes (default: config shim.venv, else SITE/venv); never inside the "
            "app root",
    "site": "site directory (default: config shim.site)",
    "force": "recreate a venv that was made from another (or a vanished) Python; removes its "
             "installed packages",
    "upgrade-pip": "upgrade pip in a new venv (default on; --no-upgrade-pip when offline)",
})
def venv(c, python="", path="", site="", force=False, upgrade_pip=True):
    """Create the site's venv from the built Python: write-protected, outside the app root.

    Uses the build-python result (or --python), refuses a venv inside the app root, upgrades
    pip, removes group/other write permission, and prints the passenger_python to use. An
    existing venv made from the same Python is left alone.
    """
    site = str(_pick(c, "site", site))
    if not site:
        raise Exit("No site given: set shim.site in invoke.yaml / fabric.yaml (or -f FILE, or "
                   "INVOKE_SHIM_SITE / FABRIC_SHIM_SITE), or pass --site DIR.", code=2)
    python = str(_pick(c, "python", python))
    if not python:
        version = _version(c, "")
        python = buildpython.python_in_prefix(_prefix(c, "", site, version), version)
    approot = f"{site.rstrip('/')}/{_pick(c, 'approot', '', 'www-approot')}"
    request = buildpython.VenvRequest(
        venv=str(_pick(c, "venv", path, f"{site.rstrip('/')}/venv")),
        approot=approot,
        python=python,
        upgrade_pip=bool(upgrade_pip),
        force=bool(force),
    )
    _run_script(c, buildpython.venv_script(request))
