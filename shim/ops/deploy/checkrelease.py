"""Checking a release before it becomes current.

`current` must never point to an unchecked release: under load Passenger starts new processes
on its own, and each loads whatever `current` names at that moment. So the release is checked
through a *shadow app root*: SITE/releases/.check-NAME/ holds a link to every entry of the real
app root (passenger_wsgi.py, logs, secrets...) except `current`, which points to the new
release; a copy of config.toml (passenger_app_root naming the shadow); and an empty tmp/ of its
own. Python code lying directly in the app root is not linked: the release must hold the app (a
module missing there must fail the check, not be found beside it). Everything `wsgi-shim check`
does runs on the real site, and the import runs in a fresh process of the site's Python on the
shadow root (cwd and sys.path as Passenger sets them there, so the app root's entries and then
the release, as `current/` would give them). No process Passenger starts ever looks into the
shadow root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

from shim.ops.deploy import store
from shim.ops.stalecode import is_python_code
from shim.runtime.layout import Site
from shim.runtime.permissions import create_private_dir
from shim.runtime.problems import Problem


def _shadow(site: Site, name: str, config_text: str | None, python: str | None) -> Path:
    shadow = store.releases_dir(site) / f".check-{name}"
    if os.path.lexists(shadow):
        shutil.rmtree(shadow, ignore_errors=True)
    create_private_dir(shadow)
    for entry in os.listdir(site.approot):
        if entry == "tmp" and site.tmp.is_dir() and not site.tmp.is_symlink():
            # A tmp/ of its own: what the import writes there (the runtime's parsed-config
            # cache) must not replace the live site's.
            os.mkdir(shadow / "tmp", 0o700)
            os.chmod(shadow / "tmp", stat.S_IMODE(site.tmp.stat().st_mode))
        elif entry not in (store.CURRENT, "config.toml") and not is_python_code(site.approot / entry):
            # Python code in the app root is left out: the app must import from the release,
            # never fall back to a stale module beside it (check's approot-code warning).
            os.symlink(site.approot / entry, shadow / entry)
    if config_text is None:
        config_text = site.config_toml.read_text()
    _write_like(site.config_toml, shadow / "config.toml", _point_approot(config_text, shadow, python))
    os.symlink(f"../{name}", shadow / store.CURRENT)
    return shadow


def _point_approot(text: str, shadow: Path, python: str | None) -> str:
    """config.toml with passenger_app_root naming the shadow root (the runtime refuses to start
    when it differs from the root it runs from) and, with a venv per release, passenger_python
    naming the release's venv as `current/.venv` will; every other line as it is."""
    values = {"passenger_app_root": str(shadow), "passenger_python": python}
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(passenger_app_root|passenger_python)\s*=", line)
        if m and values[m.group(1)]:
            end = line[len(line.rstrip("\r\n")):]
            lines[i] = f"{m.group(1)} = {json.dumps(values[m.group(1)])}{end}"
    return "".join(lines)


def _write_like(model: Path, path: Path, text: str) -> None:
    """A copy with the model's mode and group, so the permission checks judge the same file."""
    st = model.stat()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        try:
            os.fchown(f.fileno(), -1, st.st_gid)
        except PermissionError:
            pass
        os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))


def _unshadow(problem: Problem, shadow: Path, site: Site, name: str) -> Problem:
    """Problems name the real app root (and the release for what lies in it), not the shadow."""
    def fix(text: str) -> str:
        return text.replace(f"{shadow}/{store.CURRENT}", str(store.release_path(site, name))) \
                   .replace(str(shadow), str(site.approot))

    data = problem.as_dict()
    return Problem.from_dict({k: fix(v) if isinstance(v, str) else v for k, v in data.items()})


def _shadow_artefact(problem: Problem, site: Site) -> bool:
    """The runtime compares passenger_app_root with the root it runs from: the shadow's own
    path. Only a mismatch with the real app root is a problem."""
    if problem.code != "approot-mismatch":
        return False
    from shim.runtime.config import load_config

    cfg, _ = load_config(site.approot)
    configured = cfg.passenger_app_root if cfg else ""
    return not configured or os.path.realpath(configured) == os.path.realpath(site.approot)


def check_release(site: Site, name: str, config_text: str | None = None,
                  venv_python: str | None = None, requests: bool = True,
                  host: str | None = None) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of `wsgi-shim check` for the site as it will be with NAME current
    (and config.toml as CONFIG_TEXT, for --init; VENV_PYTHON: the python's name in the release's
    own venv, see venvs.py), without switching anything."""
    from shim.ops.checking import collect_problems

    shadow = store.releases_dir(site) / f".check-{name}"
    python = f"{shadow}/{store.CURRENT}/.venv/bin/{venv_python}" if venv_python else None
    shadow = _shadow(site, name, config_text, python)
    try:
        problems, _ = collect_problems(site, probe_root=shadow, probe_python=python, requests=requests, host=host)
    finally:
        shutil.rmtree(shadow, ignore_errors=True)
    problems = [_unshadow(p, shadow, site, name) for p in problems if not _shadow_artefact(p, site)]
    return [p for p in problems if p.blocking], [p for p in problems if not p.blocking]


def remove_stale_shadows(site: Site) -> None:
    for entry in os.listdir(store.releases_dir(site)):
        if entry.startswith(".check-"):
            shutil.rmtree(store.releases_dir(site) / entry, ignore_errors=True)
