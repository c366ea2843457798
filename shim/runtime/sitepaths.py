"""The paths that decide what the site runs, serves and records, and the one write rule for them.

`[wsgi] chdir` (links followed: the release `current` points to is on its way), the
`[maintenance] page`, the app log and its directory, the start records (starts.jsonl) and the
`[logging] debug_token_file` decide as much as the app root does: whoever can change one of them
(or a directory on the way) can run code as the site, serve a page on its origin, or read, fake or
erase its records. So each gets the app root's rules: no directory on the way writable by others
(here) and no owner but the site's user or root (shim.runtime.checks.ownership_problems walks the
same list). A handful of lstat calls at each process start, shared between the paths.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shim.runtime.config import Config
from shim.runtime.permissions import readable_by_others, writable_on_the_way
from shim.runtime.problems import Problem

# (label, what its owner decides): the words of the problems below.
APPROOT = ("the app root", "the code the site runs")


def site_paths(cfg: Config) -> list[tuple[str, Path, str]]:
    """(label, path, what whoever controls it decides) for every path beyond the app root's own
    files that decides what runs, what is served or where the site's records go."""
    paths = [(f"[wsgi] chdir {cfg.chdir_path}", cfg.chdir_path, "the code the site runs")]
    page = cfg.maintenance_page_path
    if page is not None:
        paths.append((f"[maintenance] page {page}", page, "the page every visitor sees"))
    log = cfg.logging
    if log.enabled:
        paths.append((f"the app log {log.path}", Path(log.path),
                      "the site's log (they could read, fake or erase it)"))
    paths.append((f"the start records {log.starts_path}", Path(log.starts_path),
                  "the start records that status and check trust"))
    token = log.debug_token_file
    if token and os.path.isabs(token):
        paths.append((f"[logging] debug_token_file {token}", Path(token),
                      "who sees the detailed error pages"))
    return paths


def writable_problems(cfg: Config) -> list[Problem]:
    """A directory (or file) on the way to the app root or to a site path that others can write:
    `approot-writable` for the app root, `path-writable` for the others; each directory once."""
    user = cfg.passenger_user or None
    cache: dict[str, os.stat_result | None] = {}
    seen: set[Path] = set()
    problems = []
    bad = writable_on_the_way(cfg.app_root, user, True, cache)
    if bad:
        seen.add(bad[0])
        problems.append(approot_writable(bad))
    for label, path, decides in site_paths(cfg):
        bad = writable_on_the_way(path, user, True, cache)
        if bad is None or bad[0] in seen:
            continue
        seen.add(bad[0])
        problems.append(Problem(
            "path-writable", f"{label}: {bad[0]} is {bad[1]}, so others could change {decides}.",
            str(bad[0]), f"chmod go-w {bad[0]} (o-w at least; g-w unless the group is your project group), or "
                   f"move it under a directory only the site's user can write."))
    return problems


def site_uid(cfg: Config) -> int:
    """The uid the site runs as: passenger_user's, else this process's."""
    if cfg.passenger_user:
        import pwd

        try:
            return pwd.getpwnam(cfg.passenger_user).pw_uid
        except KeyError:
            pass
    return os.geteuid()


def refusal(cfg: Config, path: str | Path) -> str:
    """Why the site must not use `path` (a page to serve, a file to trust), or "": a directory
    on the way, or the file, that others can write or that another user owns."""
    from shim.runtime.permissions import foreign_owned, name_of_user

    bad = writable_on_the_way(path, cfg.passenger_user or None)
    if bad:
        return f"lies where others can change it ({bad[0]} is {bad[1]})"
    for where, owner in foreign_owned([(path, True)], {0, site_uid(cfg), os.geteuid()}):
        return f"lies where another user can change it ({where} is owned by {name_of_user(owner)})"
    return ""


def approot_writable(bad: tuple[Path, str]) -> Problem:
    """The app root's write rule, as the start and `wsgi-shim check` both report it."""
    return Problem("approot-writable", f"{bad[0]} is {bad[1]}: others could change the code the site runs.",
                   str(bad[0]), f"chmod go-w {bad[0]} (o-w at least; g-w unless the group is your project group).")


def record_file_problems(cfg: Config) -> list[Problem]:
    """The app log or the start records not the site's own (root's: another user's is
    owner-foreign), which wsgi-shim never writes into, or readable by others: said once, and the
    next write makes the file private again (shim.runtime.applog, shim.runtime.records)."""
    from shim.runtime.permissions import name_of_user

    problems = []
    user = cfg.passenger_user or None
    me = site_uid(cfg)
    for name, path in (("The app log", cfg.logging.path), ("The start records", cfg.logging.starts_path)):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == 0 != me:
            problems.append(Problem(
                "log-not-own", f"{name} {path} is owned by {name_of_user(st.st_uid)}, not by the site's user "
                               f"{name_of_user(me)}: wsgi-shim writes the site's records only into the site's own "
                               "files, so nothing is recorded there.", str(path),
                f"Ask whoever made it to remove it (rm {path}, as root); the next start creates it again.",
                severity="warning"))
            continue
        why = stat.S_ISREG(st.st_mode) and readable_by_others(st, user)
        if why:
            problems.append(Problem(
                "log-exposed", f"{name} {path} is {why}: others could read what the site logged. "
                               "wsgi-shim makes it private at its next write.", str(path),
                f"chmod 600 {path} now, and look at who could have read it; keep the site's logs "
                "in a directory only the site's user can enter.", severity="warning"))
    return problems
