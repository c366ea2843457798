"""Which site a command's SITE argument names, and one answer when it names none.

Every command that works on an existing site (check, status, logs, maint, restart, serve, deploy,
rollback, releases) goes through locate(): a SITE that is not a site gets one line naming the
path and what is missing there, with a did-you-mean when a neighbouring directory looks right.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from shim.runtime.layout import DEFAULT_APPROOT, Site

MARKERS = ("config.toml", "passenger_wsgi.py")  # what makes a directory an app root


class NotASite(Exception):
    """A message for the user: SITE names no site."""


def _is_approot(path: Path) -> bool:
    return any(os.path.isfile(path / marker) for marker in MARKERS)  # never raises, unlike Path's


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def locate(path: str | Path, approot: str = DEFAULT_APPROOT) -> Site:
    """The site at PATH (the site directory or its app root). Raises NotASite."""
    p = Path(os.path.abspath(path))
    if "/" in approot or approot in ("", ".", ".."):
        raise NotASite(f"-a/--approot must be a single directory name, not {approot!r}.")
    if _is_approot(p):
        return Site(p.parent, p.name)
    site = Site(p, approot)
    if _is_dir(site.approot):
        return site
    if not os.path.lexists(p):
        what = f"{p} does not exist."
    elif not _is_dir(p):
        what = f"{p} is not a directory."
    else:
        what = f"{p} has no app root {approot}/ (nor config.toml or passenger_wsgi.py)."
    raise NotASite(f"{p} is not a site: {what}{_suggestion(p, approot)}")


def _suggestion(p: Path, approot: str) -> str:
    """A neighbour that looks right: an app root under another name, an enclosing site, or a
    sibling site whose name is close to the one given."""
    children = [c for c in _listdir(p) if _is_approot(p / c)] if _is_dir(p) else []
    if children:
        return f" Did you mean -a {children[0]} (it holds a config.toml)?"
    for parent in p.parents:
        if _is_approot(parent):
            return f" Did you mean {parent.parent} (the site containing it)?"
        if _is_dir(parent / approot):
            return f" Did you mean {parent} (the site containing it)?"
    siblings = [n for n in _listdir(p.parent) if n != p.name
                and (_is_dir(p.parent / n / approot) or _is_approot(p.parent / n))]
    close = difflib.get_close_matches(p.name, siblings, n=1, cutoff=0.6)
    if close:
        return f" Did you mean {p.parent / close[0]}?"
    return f" Create a site there with: wsgi-shim install {p}"
