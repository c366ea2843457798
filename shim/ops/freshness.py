"""Whether the running app process is older than the code and config.toml it should run.

Passenger loads the app once per process: an edited app.py or config.toml, or a `current` link
switched by hand, changes nothing until a restart. `status` and `check` compare the newest of
these with the last start record (logs/starts.jsonl) and say "a restart is due". The walk over
the app's *.py files is bounded (MAX_ENTRIES directory entries, venvs and caches skipped) and
stops at the first few changed files.
"""

from __future__ import annotations

import os
from pathlib import Path

from shim.runtime import records
from shim.runtime.config import Config
from shim.runtime.layout import Site
from shim.runtime.problems import Problem

MAX_ENTRIES = 20000  # directory entries looked at, at most: `status` stays quick on a big tree
SHOWN = 3            # changed files named; finding this many ends the walk
SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", "node_modules", "site-packages", "logs", "tmp",
             "releases", "shared", "static", "media", ".venv", "venv"}


def _mtime(path: Path, follow: bool = True) -> float:
    try:
        return (os.stat(path) if follow else os.lstat(path)).st_mtime
    except OSError:
        return 0.0


def _changed_py(top: Path, since: float, found: list[Path]) -> None:
    """Append *.py files under TOP modified after SINCE to FOUND, within the entry budget."""
    budget = MAX_ENTRIES
    stack = [top]
    while stack and budget > 0 and len(found) < SHOWN:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if any(e.name == "pyvenv.cfg" for e in entries):
            continue  # a venv (even one inside the app root): not the app's code
        for entry in entries:
            budget -= 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                        stack.append(Path(entry.path))
                elif entry.name.endswith(".py") and entry.is_file() and entry.stat().st_mtime > since:
                    found.append(Path(entry.path))
            except OSError:
                continue
            if len(found) >= SHOWN:
                return


def changed_since(site: Site, cfg: Config, since: float) -> list[Path]:
    """config.toml, the `current` link and the app's *.py files changed after SINCE (epoch)."""
    found = [p for p in (site.config_toml,) if _mtime(p) > since]
    current = site.approot / "current"
    if os.path.islink(current) and _mtime(current, follow=False) > since:
        found.append(current)
    chdir = cfg.chdir_path
    _changed_py(Path(os.path.realpath(chdir)) if chdir.is_dir() else site.approot, since, found)
    if chdir.resolve() != site.approot.resolve():  # Passenger's sys.path has the app root too
        top = [Path(e.path) for e in os.scandir(site.approot)
               if e.name.endswith(".py") and e.name != "passenger_wsgi.py" and e.is_file()] \
            if site.approot.is_dir() else []
        found += [p for p in top if _mtime(p) > since][:SHOWN]
    return found[:SHOWN]


def restart_due(site: Site, cfg: Config) -> tuple[dict, list[Path]] | None:
    """(the last start record, what changed after it), or None when nothing did, no start is
    recorded, or a restart was requested after the change (the next request starts it)."""
    starts = records.read_starts(cfg.logging.starts_path, limit=1)
    if not starts:
        return None
    last = starts[-1]
    epoch = float(last.get("epoch", 0) or 0)
    changed = changed_since(site, cfg, epoch)
    if not changed:
        return None
    try:  # ctime: a touch to the nanosecond (restart.txt's mtime is set to whole seconds)
        touched = os.stat(site.restart_txt).st_ctime
    except OSError:
        touched = 0.0
    if touched > max(_mtime(p, follow=p.name != "current") for p in changed):
        return None
    return last, changed


def restart_due_problem(site: Site, cfg: Config) -> list[Problem]:
    """The `restart-due` warning of `check`, or nothing."""
    due = restart_due(site, cfg)
    if due is None:
        return []
    last, changed = due
    names = ", ".join(str(p) for p in changed)
    return [Problem(
        "restart-due",
        f"A restart is due: {names} changed after the running app process started "
        f"({last.get('time')}, pid {last.get('pid')}); Passenger still serves what it loaded then.",
        str(changed[0]),
        f"Restart the app: wsgi-shim restart {site.site} (or inv restart); Passenger loads code and "
        "config.toml only when a process starts.", severity="warning")]
