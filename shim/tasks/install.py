"""`install`: put this wsgi-shim into the site's venv, then create the site if it is new.

What is installed is always this project's own code: a wheel you name, or a wheel built here
from a checkout (by default the one these tasks run from). Never a version from the package
index: the package called wsgi-shim on PyPI is the older 0.1.0 (module ``wsgi_shim``), not this.
"""

from __future__ import annotations

import atexit
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from invoke.exceptions import Exit, UnexpectedExit

from shim.tasks.config import setting
from shim.tasks.flags import SITE_HELP, VENV_HELP, shim_task
from shim.tasks.remote import Paths, is_remote, local, q, run, site_paths, where

# The checkout these tasks come from, when they come from one (not from an installed wheel).
CHECKOUT = Path(__file__).resolve().parents[2]

NOTHING_TO_INSTALL = (
    "Nothing to install: these tasks come from an installed wsgi-shim, not from a checkout, so "
    "there is no source to build the site's wsgi-shim from. Pass --wheel FILE (the wheel you "
    "installed these tasks from), --source DIR (a checkout of wsgi-shim), or set shim.wheel / "
    "shim.source. (The wsgi-shim on PyPI is the older 0.1.0, not this project: it is never "
    "installed from there.)")

_built: dict[str, Path] = {}


def is_checkout(path: Path) -> bool:
    """A wsgi-shim source tree: its pyproject.toml names the project."""
    try:
        return 'name = "wsgi-shim"' in (path / "pyproject.toml").read_text()
    except OSError:
        return False


def build_wheel(c, source: str) -> Path:
    """Build the shim's wheel from a local checkout, always on this machine (c.local over SSH);
    once per run, however many hosts (-H a,b) it is installed on."""
    if source in _built and _built[source].is_file():
        return _built[source]
    out = Path(tempfile.mkdtemp(prefix="wsgi-shim-wheel-"))
    atexit.register(shutil.rmtree, out, True)
    cmd = (f"{q(sys.executable)} -m pip wheel --no-deps --disable-pip-version-check -q "
           f"-w {q(str(out))} {q(source)}")
    print(f"building the wsgi-shim wheel from {source}")
    try:
        local(c)(cmd, in_stream=False)
    except UnexpectedExit as exc:
        raise Exit(f"building the wheel failed (exit {exc.result.exited}): {cmd}",
                   code=exc.result.exited or 1) from None
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise Exit(f"building the wheel produced no .whl in {out}", code=1)
    _built[source] = wheels[-1]
    return wheels[-1]


def what_to_install(c, wheel: str | None, source: str | None) -> tuple[str, bool]:
    """(target, is_local_wheel): a wheel file on this machine, or a pip requirement the user
    named with --source (e.g. git+https://...). Never a guess at the package index."""
    wheel = setting(c, "wheel", wheel)
    source = setting(c, "source", source)
    if wheel:
        path = Path(str(wheel)).expanduser()
        if not path.is_file():
            raise Exit(f"No such wheel file here: {wheel}", code=1)
        return str(path), True
    if source:
        path = Path(str(source)).expanduser()
        if path.is_dir():
            return str(build_wheel(c, str(path))), True
        return str(source), False
    if is_checkout(CHECKOUT):
        return str(build_wheel(c, str(CHECKOUT))), True
    raise Exit(NOTHING_TO_INSTALL, code=2)


def pip_install(c, p: Paths, target: str, is_wheel: bool) -> None:
    """pip install TARGET into the venv; a wheel is copied to the host first under fab -H."""
    remote_tmp = None
    if is_wheel and is_remote(c):
        remote_tmp = run(c, "mktemp -d", "making a temporary directory", hide=True).stdout.strip()
        remote_wheel = f"{remote_tmp}/{Path(target).name}"
        print(f"copying {Path(target).name} to {c.host}:{remote_tmp}")
        c.put(target, remote_wheel)
        quoted = q(remote_wheel)
    else:
        quoted = q(target) if is_wheel else shlex.quote(target)
    try:
        pip = f"{q(p.python)} -m pip install --disable-pip-version-check -q"
        # --force-reinstall --no-deps: pip skips a wheel whose version is already installed,
        # which would silently keep the old code; the second call brings in missing deps.
        run(c, f"{pip} --force-reinstall --no-deps {quoted} && {pip} {quoted}",
            "installing wsgi-shim into the venv")
    finally:
        if remote_tmp:
            c.run(f"rm -rf {q(remote_tmp)}", warn=True, hide=True)
    print(f"installed {Path(target).name if is_wheel else target} into {p.venv}{where(c)}")


def create_site(c, p: Paths, user: str | None, group: str | None, app: str | None) -> None:
    """`wsgi-shim install` when the app root does not exist yet; an existing site is left."""
    if c.run(f"test -e {q(p.approot)}", warn=True, hide=True).ok:
        print(f"{p.approot} exists; left as it is (inv check tells whether it is healthy)")
        return
    args = ["-a", q(p.approot_name), "-d", q(p.docroot_name), "--python", q(p.python)]
    for flag, value in (("--user", setting(c, "user", user)),
                        ("--group", setting(c, "group", group)),
                        ("--app", setting(c, "app", app))):
        if value:
            args += [flag, shlex.quote(str(value))]
    run(c, " ".join([q(p.wsgi_shim), "install", q(p.site), *args]), "creating the site", p=p)


@shim_task(help={
    "site": SITE_HELP,
    "venv": VENV_HELP,
    "wheel": "install this built wheel file (a local path) (default: config shim.wheel)",
    "source": "a wsgi-shim checkout to build the wheel from, or a pip requirement such as "
              "git+https://... (default: config shim.source, else the checkout these tasks "
              "run from)",
    "user": "passenger_user for a new site (wsgi-shim install --user)",
    "group": "passenger_group for a new site (wsgi-shim install --group)",
    "app": "the site's WSGI app as module.attr for a new site (wsgi-shim install --app)",
})
def install(c, site=None, venv=None, wheel=None, source=None, user=None, group=None, app=None):
    """Install wsgi-shim into the site's venv, then create the site if it does not exist yet.

    The venv must exist already (inv venv). What is installed: --wheel, else a wheel built here
    from --source or from the checkout these tasks run from. Never the package index: PyPI's
    wsgi-shim is the older 0.1.0. Under `fab -H host` the wheel is built on this machine,
    copied to a temporary directory on the host and installed there. When the app root does
    not exist, `wsgi-shim install` creates the site (passenger_wsgi.py, config.toml with
    passenger_python = the venv's python, tmp/, docroot).

    Example: inv install --site ~/mysite --app myproject.wsgi.application
    """
    p = site_paths(c, site, venv)
    if not c.run(f"test -x {q(p.python)}", warn=True, hide=True).ok:
        raise Exit(f"No venv at {p.venv}{where(c)}: create it first (inv venv), "
                   "or set shim.venv.", code=1)
    target, is_wheel = what_to_install(c, wheel, source)
    pip_install(c, p, target, is_wheel)
    create_site(c, p, user, group, app)
