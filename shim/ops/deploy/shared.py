"""Shared paths: the data a site keeps beside its code, kept out of the releases.

    config.toml:   [deploy] shared = ["db.sqlite3", "media/", "instance/", ".env"]
    SITE/shared/
      db.sqlite3                    the one copy (and its -wal, -shm, -journal beside it)
      media/  instance/  .env
      .unshared/RELEASE/PATH        a release's own copy, put aside by a rollback (never deleted)
    SITE/releases/NAME/db.sqlite3 -> ../../shared/db.sqlite3      in every release

Each release gets its links right after it is unpacked, before pip, the check and the release
commands, so `migrate` and the app write the same data. The first deploy that names a path moves
it into SITE/shared/ from the live release (or, when the live release has none, from the new
one); data already in SITE/shared/ is never replaced. The move is one atomic exchange of the
path and a link (renameat2), so the live site never sees the path missing, and a kill at any
moment leaves the data at exactly one of the two places (the next run finishes the move).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shim.ops.deploy import store
from shim.ops.deploy.store import DeployError
from shim.runtime.layout import Site
from shim.runtime.permissions import create_private_dir
from shim.runtime.problems import Problem

SHARED = "shared"
UNSHARED = ".unshared"
SIDECARS = ("-wal", "-shm", "-journal")  # SQLite keeps these beside a database: they move with it


@dataclass(frozen=True)
class Entry:
    path: str       # "db.sqlite3", "media" (relative to the release's top level)
    is_dir: bool

    @classmethod
    def parse(cls, name: str) -> "Entry":
        return cls(name.rstrip("/"), name.endswith("/"))

    @property
    def shown(self) -> str:
        return self.path + ("/" if self.is_dir else "")


def entries(names: list[str]) -> list[Entry]:
    """The entries of config.toml's [deploy] shared (already normalised by the config parser)."""
    return [Entry.parse(n) for n in names]


def shared_dir(site: Site) -> Path:
    return site.site / SHARED


def link_text(path: str) -> str:
    """What releases/NAME/PATH points to: relative, so it holds wherever the site is mounted."""
    return "../" * path.count("/") + f"../../{SHARED}/{path}"


def _is_our_link(path: Path, entry_path: str) -> bool:
    return path.is_symlink() and os.readlink(path) == link_text(entry_path)


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


# ---- linking a release ------------------------------------------------------------------------


def link_release(site: Site, name: str, names: list[str], live: str | None, new: bool,
                 say: Callable[[str], None]) -> None:
    """Give release NAME its links to SITE/shared/ for each [deploy] shared entry (NAMES).

    LIVE is the release being served (its copy is the one moved in first). NEW: NAME was just
    unpacked from SOURCE, so its own copy of a path already shared is dropped (SOURCE keeps it);
    a kept release's own copy (a rollback) is put aside into SITE/shared/.unshared/ instead.
    Every entry is judged before anything is changed; a conflict raises DeployError."""
    todo = entries(names)
    if not todo:
        return
    release = store.release_path(site, name)
    live_dir = store.release_path(site, live) if live and live != name else None
    for entry in todo:
        _judge(site, entry, release, live_dir)
    if not shared_dir(site).is_dir():
        create_private_dir(shared_dir(site))
    for entry in todo:
        _link_one(site, entry, release, name, live_dir, new, say)


def _kind(path: Path) -> str:
    """"missing", "dir", "file" (anything else that is not a directory), following links."""
    if not _exists(path):
        return "missing"
    return "dir" if path.is_dir() else "file"


def _judge(site: Site, entry: Entry, release: Path, live_dir: Path | None) -> None:
    target = shared_dir(site) / entry.path
    _drop_placeholder(target, entry)
    want = "dir" if entry.is_dir else "file"
    where = f"[deploy] shared {entry.shown!r}"
    for place in (target, release / entry.path, *([live_dir / entry.path] if live_dir else [])):
        kind = _kind(place) if not _is_our_link(place, entry.path) else "missing"
        if kind not in ("missing", want):
            fix = (f'write it as "{entry.path}/"' if kind == "dir" else f'write it as "{entry.path}"')
            raise DeployError(f"{where}: {place} is a {'directory' if kind == 'dir' else 'file'}, but the "
                              f"entry names a {'directory' if entry.is_dir else 'file'}; {fix} in config.toml. "
                              "Nothing was moved.")
    _check_parents(release, entry, where)
    if live_dir is not None and _exists(target) and _own(live_dir, entry):
        raise DeployError(
            f"{where}: both {target} and the live release's own {live_dir / entry.path} exist, and "
            "wsgi-shim will not choose which data the site keeps. Keep the one you want: either remove "
            f"(or move away) {target}, and the deploy moves the live copy there; or remove "
            f"{live_dir / entry.path}. Nothing was changed.")


def _check_parents(release: Path, entry: Entry, where: str) -> None:
    """Every directory above PATH inside the release must be a real directory of the release."""
    current = release
    for part in entry.path.split("/")[:-1]:
        current = current / part
        if current.is_symlink() or (_exists(current) and not current.is_dir()):
            raise DeployError(f"{where}: {current} is not a directory of the release (a link or a file), "
                              "so the shared path cannot be linked below it. Share the path it leads to "
                              "instead. Nothing was moved.")


def _own(release: Path, entry: Entry) -> bool:
    """RELEASE holds its own PATH (not our link to SITE/shared/)."""
    path = release / entry.path
    return _exists(path) and not _is_our_link(path, entry.path)


def _link_one(site: Site, entry: Entry, release: Path, name: str, live_dir: Path | None, new: bool,
              say: Callable[[str], None]) -> None:
    target = shared_dir(site) / entry.path
    if not _exists(target):
        if live_dir is not None and _own(live_dir, entry):
            move_in(site, live_dir, entry)
            say(f"  {entry.shown}: moved from the live release {live_dir.name} to {target} (now shared; "
                f"{live_dir.name} links to it too)")
        elif _own(release, entry):
            move_in(site, release, entry)
            say(f"  {entry.shown}: moved from the new release to {target} (the first copy of shared data)")
        elif entry.is_dir:
            _make_parents(target.parent)
            create_private_dir(target)
            say(f"  {entry.shown}: {target} created empty")
        else:
            _make_parents(target.parent)
            say(f"  {entry.shown}: {target} does not exist yet; the app creates it through the link")
    if _own(release, entry):
        _replace_own(site, release, name, entry, new, say)
    _place_link(release, entry)


def _replace_own(site: Site, release: Path, name: str, entry: Entry, new: bool,
                 say: Callable[[str], None]) -> None:
    """The release's own copy would hide the shared data: the shared data wins. The copy (with an
    SQLite database's sidecars) is dropped when it came from SOURCE, else put aside."""
    aside = shared_dir(site) / UNSHARED / name / entry.path
    n = 1
    while _exists(aside):  # never over an earlier copy put aside
        n += 1
        aside = shared_dir(site) / UNSHARED / f"{name}-{n}" / entry.path
    for suffix in ("", *([] if entry.is_dir else SIDECARS)):
        own = Path(f"{release / entry.path}{suffix}")
        if suffix and not _own(release, Entry(entry.path + suffix, False)):
            continue
        if new:
            shutil.rmtree(own) if own.is_dir() and not own.is_symlink() else os.unlink(own)
        else:
            _make_parents(aside.parent)
            os.rename(own, f"{aside}{suffix}")
    if new:
        say(f"  warning: the release's own {entry.shown} (from SOURCE) is not used: {entry.shown} is shared, "
            f"so the app sees {shared_dir(site) / entry.path} (shared data is never replaced)")
    else:
        say(f"  warning: release {name}'s own {entry.shown} was put aside to {aside}: the app sees "
            f"{shared_dir(site) / entry.path}; delete the copy when you no longer need it")


def _make_parents(path: Path) -> None:
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        create_private_dir(p)


def _place_link(release: Path, entry: Entry) -> None:
    path = release / entry.path
    if _is_our_link(path, entry.path):
        return
    _make_parents(path.parent)
    tmp = path.with_name(f".{path.name}.wsgi-shim-link")
    if _exists(tmp):
        os.unlink(tmp)
    os.symlink(link_text(entry.path), tmp)
    os.replace(tmp, path)


# ---- moving data into SITE/shared/ --------------------------------------------------------------


def _drop_placeholder(target: Path, entry: Entry) -> None:
    """A kill between making the link at the target and the exchange leaves it: it holds no data
    (a link whose text, read from SITE/shared/, leads nowhere meaningful)."""
    for suffix in ("", *SIDECARS):
        p = Path(f"{target}{suffix}")
        if p.is_symlink() and os.readlink(p) == link_text(entry.path + suffix):
            os.unlink(p)


def move_in(site: Site, release: Path, entry: Entry) -> None:
    """Move RELEASE/PATH (and an SQLite database's sidecar files) to SITE/shared/PATH, leaving
    our link in its place, each in one step: the link is made at the target, then the two are
    exchanged (renameat2). So RELEASE/PATH answers at every moment (running processes keep their
    open files; new opens reach the same inode), and a kill leaves the data at exactly one place."""
    target = shared_dir(site) / entry.path
    _make_parents(target.parent)
    base = release / entry.path
    # The sidecars first: a kill after them leaves the database where it was, its journal reached
    # through our link; a kill after the database and before them would separate the two.
    sidecars = [] if entry.is_dir else [s for s in SIDECARS if _own(release, Entry(entry.path + s, False))]
    for suffix in [*sidecars, ""]:
        source, dest = Path(f"{base}{suffix}"), Path(f"{target}{suffix}")
        if _exists(dest):
            raise DeployError(f"{dest} already exists; wsgi-shim will not replace shared data. Move it away, "
                              f"or remove {source}, then deploy again.")
        os.symlink(link_text(entry.path + suffix), dest)
        if not store.exchange(source, dest):  # no renameat2 (not Linux): a moment without the path
            os.unlink(dest)
            os.rename(source, dest)
            _place_link(release, Entry(entry.path + suffix, False))


# ---- what check warns about ---------------------------------------------------------------------

DB_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".db3", ".s3db", ".sl3")
SQLITE_MAGIC = b"SQLite format 3\x00"
DATA_DIRS = ("media", "uploads", "upload", "instance")  # Django's MEDIA_ROOT, Flask's instance path
SKIP_DIRS = frozenset({".venv", ".git", ".hg", "node_modules", "__pycache__", ".tox", ".mypy_cache"})
SCAN_LIMIT = 20000  # entries looked at in one release (a huge tree is not walked to the end)


def release_problems(site: Site, release: Path, names: list[str], chdir: str) -> list[Problem]:
    """Warnings for RELEASE (a directory in SITE/releases): shared paths it hides or lacks, and
    data inside it that is not shared (lost at the next deploy and when it is pruned)."""
    todo = entries(names)
    problems = [p for p in (_entry_problem(site, release, e) for e in todo) if p]
    return problems + unshared_data(site, release, todo, chdir)


def _entry_problem(site: Site, release: Path, entry: Entry) -> Problem | None:
    path = release / entry.path
    target = shared_dir(site) / entry.path
    if _is_our_link(path, entry.path):
        return None
    where = f"{path} ([deploy] shared {entry.shown!r})"
    if not _exists(path):
        return _warning("shared-not-linked",
                        f"Release {release.name} has no link {entry.path} -> {target}, so the app does not "
                        "see the shared data there.", where,
                        "Deploy again: every deploy links the [deploy] shared paths into its release (this "
                        "release was made before the entry was added).")
    if _exists(target):
        return _warning("shared-hidden",
                        f"Release {release.name} has its own {entry.shown}, which hides the shared {target}: "
                        "the app reads and writes the release's copy, which is deleted when the release is "
                        "pruned.", where,
                        "Deploy again (the new release links the shared copy). If the release's copy holds "
                        "the data you want, move it over the shared one first.")
    return _warning("shared-not-moved",
                    f"{entry.shown} is listed in [deploy] shared but still lies inside release {release.name}.",
                    where, f"Nothing to do: the next deploy moves it to {target} and links it into every "
                           "release (a rollback does too).")


def unshared_data(site: Site, release: Path, shared: list[Entry], chdir: str = "current") -> list[Problem]:
    """SQLite databases anywhere in RELEASE, and upload/instance directories at its top (or in
    chdir's subdirectory), that are real files of the release rather than links to SITE/shared/."""
    def listed(path: Path) -> bool:  # already named in [deploy] shared (linked or not yet)
        rel = path.relative_to(release).as_posix()
        return any(rel == e.path or rel.startswith(e.path + "/") for e in shared)

    found = [_data_problem(site, release, p) for p in _databases(release) if not listed(p)]
    sub = chdir.strip("/").split("/", 1)[1] if "/" in chdir.strip("/") else ""
    for top in sorted({release, release / sub}):
        for name in DATA_DIRS:
            d = top / name
            if d.is_dir() and not d.is_symlink() and not listed(d):
                found.append(_data_problem(site, release, d))
    return found


def _databases(release: Path) -> list[Path]:
    from shim.runtime.files import read_regular

    found, pending, seen = [], [release], 0
    while pending and seen < SCAN_LIMIT:
        try:
            with os.scandir(pending.pop()) as it:
                for entry in it:
                    seen += 1
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in SKIP_DIRS:
                            pending.append(Path(entry.path))
                    elif entry.name.endswith(DB_SUFFIXES) and entry.is_file(follow_symlinks=False):
                        try:
                            if read_regular(entry.path, len(SQLITE_MAGIC), truncate=True) == SQLITE_MAGIC:
                                found.append(Path(entry.path))
                        except OSError:
                            pass
        except OSError:
            continue
    return sorted(found)


def _data_problem(site: Site, release: Path, path: Path) -> Problem:
    """data-in-release for an SQLite database or (PATH a directory) an upload/instance directory."""
    is_dir = path.is_dir()
    rel = path.relative_to(release).as_posix()
    entry = f'shared = ["{rel}{"/" if is_dir else ""}"]'
    what = (f"{rel}/ in release {release.name} looks like a directory of uploaded or instance data: what the "
            "app writes there is not in the next deploy's release" if is_dir else
            f"{rel} is an SQLite database inside release {release.name}: the next deploy's release starts "
            "without it (a release holds only what SOURCE holds)")
    fix = (f"Share it: add [deploy] {entry} to config.toml (or the directory it is in); the next deploy moves "
           f"it to {shared_dir(site) / rel} and links it into every release. See docs/deploying.md#shared-paths.")
    if is_dir:
        fix += " If it only holds files from SOURCE, ignore this."
    return _warning("data-in-release", what + ", and it is deleted when this release is pruned.", str(path), fix)


def _warning(code: str, what: str, where: str, fix: str) -> Problem:
    return Problem(code, what, where, fix, severity="warning")
