"""Python code left in the app root of a site that serves its code from elsewhere.

Passenger puts the app root first on sys.path (its loader's cwd), and the runtime puts `[wsgi]
chdir` before it. With chdir = "current" (deploys) or a subdirectory, a module directly in the app
root is shadowed while the release has one of that name, and imported the moment the release
lacks it: a deploy of the wrong directory would serve the stale copy. `check` names such code
(`approot-code`); a deploy's check of a release hides it (shim/ops/deploy/checkrelease.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from shim.runtime.config import Config
from shim.runtime.layout import Site
from shim.runtime.problems import Problem

STARTUP = "passenger_wsgi.py"
MAX_SHOWN = 8


def is_python_code(path: Path) -> bool:
    """A module or package Python could import from the directory PATH lies in: NAME.py (or a
    compiled .pyc/.so), or a directory holding an __init__.py or any *.py (a namespace package)."""
    name = path.name
    if name.startswith(".") or name == STARTUP:
        return False
    if path.is_dir() and not path.is_symlink():
        try:
            return any(e.endswith(".py") for e in os.listdir(path))
        except OSError:
            return False
    return name.endswith((".py", ".pyc")) or (name.endswith(".so") and ".cpython-" in name)


def approot_code(approot: Path) -> list[Path]:
    """The app root's own Python modules and packages (not passenger_wsgi.py), sorted."""
    try:
        entries = sorted(os.listdir(approot))
    except OSError:
        return []
    return [approot / e for e in entries if is_python_code(approot / e)]


def approot_code_problems(site: Site, cfg: Config) -> list[Problem]:
    """`approot-code`: code in the app root while the app is imported from [wsgi] chdir elsewhere."""
    if cfg.chdir_path.resolve() == site.approot.resolve() or not cfg.chdir.strip("/ ."):
        return []
    found = approot_code(site.approot)
    if not found:
        return []
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found[:MAX_SHOWN])
    more = f" and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else ""
    aside = site.site / "approot-code-aside"
    from_releases = cfg.chdir.strip("/").split("/")[0] == "current"
    served = "the release `current` points to" if from_releases else f"{cfg.chdir_path}"
    return [Problem(
        "approot-code",
        f"Python code lies directly in the app root: {names}{more}. The app is imported from {served}, "
        "but the app root is on sys.path too: a module there is used whenever "
        f"{'a release' if from_releases else 'chdir'} lacks one of that name, so stale code could be "
        "served without a word.", str(site.approot),
        f"Move it out of the app root (your code belongs in the project you deploy), e.g. mkdir "
        f"{aside} && mv {' '.join(str(p) for p in found[:MAX_SHOWN])}{' ...' if more else ''} {aside}/; "
        "then restart. Only passenger_wsgi.py and config.toml belong there.", severity="warning")]
