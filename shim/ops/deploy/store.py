"""The release store: SITE/releases/NAME directories, the `current` link, the lock, the history.

    SITE/releases/
      20261124T031500Z/            one directory per deploy (UTC time; -2, -3 ... if taken)
      .partial-20261124T040210Z/   a release being unpacked (never served; removed if left over)
      .history.jsonl               one line per release that went live (deploy or rollback)
      .journal.json                the deploy in progress (see journal.py)
      .lock                        held by the one deploy/rollback running
    SITE/www-approot/current -> ../releases/20261124T040210Z
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import posixpath
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shim.runtime.layout import Site
from shim.runtime.permissions import create_private_dir

RELEASES = "releases"
CURRENT = "current"
NAME_RE = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")
PARTIAL = ".partial-"
HISTORY = ".history.jsonl"
DEFAULT_KEEP = 5


class DeployError(Exception):
    """A message for the user; whatever the step had started has been undone."""


def releases_dir(site: Site) -> Path:
    return site.site / RELEASES


def current_link(site: Site) -> Path:
    return site.approot / CURRENT


def release_path(site: Site, name: str) -> Path:
    return releases_dir(site) / name


def valid_name(name: str) -> bool:
    """A release name whose time part is a real UTC time (20261399T999999Z is not)."""
    m = NAME_RE.match(name)
    if not m:
        return False
    try:
        time.strptime(m.group(1), "%Y%m%dT%H%M%SZ")
    except ValueError:
        return False
    return True


def sort_key(name: str) -> tuple[str, int]:
    m = NAME_RE.match(name)
    return (m.group(1), int(m.group(2) or 1)) if m else ("", 0)


def list_releases(site: Site) -> list[str]:
    """Release names, oldest first (names sort by time; a -N suffix after the plain name).
    Directories that only look like releases (an impossible date) are not releases."""
    root = releases_dir(site)
    try:
        entries = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [n for n in entries if valid_name(n) and not os.path.islink(root / n) and (root / n).is_dir()]
    return sorted(names, key=sort_key)


def current_release(site: Site) -> str | None:
    """The release `current` points to; None before the first deploy.

    Raises DeployError when `current` exists but is not a link this tool made.
    """
    link = current_link(site)
    if not os.path.lexists(link):
        return None
    if not link.is_symlink():
        raise DeployError(f"{link} exists and is not a symbolic link, so wsgi-shim cannot switch it. "
                          "Move it out of the way (its contents become your first release when you "
                          "deploy them).")
    target = os.readlink(link)
    head, name = posixpath.split(target.rstrip("/"))
    if head != f"../{RELEASES}" or not NAME_RE.match(name):
        raise DeployError(f"{link} points to {target}, not to a release in {releases_dir(site)}. "
                          f"Remove the link (rm {link}) and deploy again.")
    return name


def new_release_name(site: Site) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # Within one second, after the highest suffix in use: a name freed by pruning is never
    # reused, as a newer release must sort after every older one.
    taken = [NAME_RE.match(n.removeprefix(PARTIAL)) for n in os.listdir(releases_dir(site))]
    used = [int(m.group(2) or 1) for m in taken if m and m.group(1) == stamp]
    n = max(used, default=0) + 1
    return stamp if n == 1 else f"{stamp}-{n}"


def switch(site: Site, name: str | None) -> None:
    """Point `current` at release NAME in one step (a new link renamed over the old one);
    NAME None removes `current` (back to before the first deploy)."""
    link = current_link(site)
    if name is None:
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        return
    tmp = link.with_name(f".{CURRENT}.wsgi-shim-{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(f"../{RELEASES}/{name}", tmp)
    os.replace(tmp, link)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False


@contextmanager
def locked(site: Site) -> Iterator[None]:
    """One deploy or rollback at a time (the lock dies with its process, even on SIGKILL)."""
    root = releases_dir(site)
    if not root.is_dir():
        create_private_dir(root)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(f"another deploy or rollback of {site.site} is running "
                              f"(it holds {root / '.lock'}); try again when it has finished.") from None
        yield
    finally:
        os.close(fd)


def prune(site: Site, keep: int, protect: set[str]) -> list[str]:
    """Remove the oldest releases so that KEEP remain, never one in PROTECT. Undone releases (live
    for a moment, then switched away from) never count toward KEEP and go first."""
    names = list_releases(site)
    removed = []
    for name in sorted(undone_releases(site) & set(names) - protect):
        remove_release(site, name)
        removed.append(name)
    names = [n for n in names if n not in removed]
    excess = len(names) - max(keep, len(protect & set(names)))
    for name in names:
        if excess <= 0:
            break
        if name in protect:
            continue
        remove_release(site, name)
        removed.append(name)
        excess -= 1
    return removed


def remove_partials(site: Site) -> list[str]:
    """Leftovers of a deploy that was killed while unpacking or checking (a partial release, a
    shadow app root of the check; we hold the lock: none is running)."""
    removed = []
    for entry in os.listdir(releases_dir(site)):
        if entry.startswith((PARTIAL, ".check-", ".journal.json.")):  # a journal's temporary copy too
            path = releases_dir(site) / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(entry)
    return removed


# ---- history: what went live, in order -----------------------------------------------------


def record_live(site: Site, name: str, how: str, commit: str | None = None, undone: str | None = None) -> None:
    """Append NAME to the history of live releases (after the switch; fsynced). UNDONE: the
    release an undo switched away from (it does not count as having been live)."""
    entry = {"release": name, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "how": how}
    if commit:
        entry["commit"] = commit
    if undone:
        entry["undone"] = undone
    # O_APPEND writes of one short line are atomic: a kill leaves whole lines only.
    fd = os.open(releases_dir(site) / HISTORY, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_history(site: Site) -> list[dict]:
    """Entries of .history.jsonl, oldest first; lines that do not parse are skipped."""
    data = read_small(releases_dir(site) / HISTORY)
    if data is None:
        return []
    from shim.runtime.files import json_lines

    return json_lines(data, "release")


def read_small(path: Path, limit: int = 4 * 1024 * 1024) -> bytes | None:
    """A regular file's first LIMIT bytes; None when missing or not a regular file (a FIFO
    planted there must not block us)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit)


def write_meta(site: Site, name: str, meta: dict) -> None:
    """What a release was made from (source, git commit), next to it: releases/.meta-NAME.json."""
    path = releases_dir(site) / f".meta-{name}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json.dumps(meta).encode())
    finally:
        os.close(fd)


def read_meta(site: Site, name: str) -> dict:
    data = read_small(releases_dir(site) / f".meta-{name}.json", 65536)
    try:
        meta = json.loads(data or b"{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def remove_release(site: Site, name: str) -> None:
    shutil.rmtree(release_path(site, name), ignore_errors=True)
    try:
        os.unlink(releases_dir(site) / f".meta-{name}.json")
    except FileNotFoundError:
        pass


def undone_releases(site: Site) -> set[str]:
    """Releases a deploy switched to and then undid (a failure after the switch, an interrupt),
    unless they went live again since."""
    undone: set[str] = set()
    for item in read_history(site):
        if item.get("undone"):
            undone.add(item["undone"])
        undone.discard(item["release"])
    return undone


def live_sequence(site: Site) -> list[str]:
    """Releases in the order they went live, consecutive repeats merged."""
    seq: list[str] = []
    for item in read_history(site):
        if item.get("undone") and seq and seq[-1] == item["undone"]:
            seq.pop()  # a deploy undone after its switch: as if it had never gone live
        if not seq or seq[-1] != item["release"]:
            seq.append(item["release"])
    return seq


def previous_live(site: Site, current: str | None) -> str | None:
    """The release that was live before CURRENT (and still exists), from the history."""
    kept = set(list_releases(site))
    seq = live_sequence(site)
    while seq and seq[-1] == current:
        seq.pop()
    for name in reversed(seq):
        if name in kept and name != current:
            return name
    return None
