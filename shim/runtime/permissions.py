"""Permission rules, in one place, with the reason for each.

On shared hosting every site runs as its owner, so what matters is who *else* can read or
change a site's files:

* Anyone who can write the venv, the app root or an ancestor directory can make the web
  server run their code as the site's owner. So nothing on those paths may be writable by
  "other", nor by a group that is not safe (below). Sticky directories such as /tmp are
  fine: others may create entries there but cannot replace ours.
* config.toml, passenger_wsgi.py and secret files may hold secrets or reveal them, so they
  must not be readable by "other" (nor by an unsafe group).
* Directories that Apache and Passenger must walk through need the "other" search bit (x).

A group is *safe* when it is not the owner's default (primary) group, or when that default
group is a user-private group (same name as the user, as `useradd -U` makes). The default
group of most systems ("users", "staff", "domain users") contains everybody, so granting it
access is the same as granting it to the world. A project group chosen on purpose is safe.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def group_is_safe(gid: int, username: str | None = None) -> bool:
    """False when gid is `username`'s default group and that group is not user-private."""
    try:
        pw = pwd.getpwnam(username) if username else pwd.getpwuid(os.getuid())
    except KeyError:
        return True
    if pw.pw_gid != gid:
        return True
    try:
        return grp.getgrgid(gid).gr_name == pw.pw_name
    except KeyError:
        return False


def name_of_group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def name_of_user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def writable_by_others(st: os.stat_result, username: str | None = None) -> str:
    """Why this file or directory is writable by someone else, or "" if it is not."""
    sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if st.st_mode & stat.S_IWOTH and not sticky_dir:
        return f"writable by everyone (mode {stat.filemode(st.st_mode)})"
    if st.st_mode & stat.S_IWGRP and not sticky_dir and not group_is_safe(st.st_gid, username):
        return (f"writable by group '{name_of_group(st.st_gid)}', which is a default group "
                f"shared with other users (mode {stat.filemode(st.st_mode)})")
    return ""


def readable_by_others(st: os.stat_result, username: str | None = None) -> str:
    """Why this file can be read by someone other than its owner's project, or ""."""
    if st.st_mode & stat.S_IROTH:
        return f"readable by everyone (mode {stat.filemode(st.st_mode)})"
    if st.st_mode & stat.S_IRGRP and not group_is_safe(st.st_gid, username):
        return (f"readable by group '{name_of_group(st.st_gid)}', which is a default group "
                f"shared with other users (mode {stat.filemode(st.st_mode)})")
    return ""


def _ancestors(path: Path):
    """(directory, stat) from / down to path inclusive; stops at the first that cannot be stat'ed."""
    p = Path("/")
    for part in Path(os.path.abspath(path)).parts[1:]:
        p = p / part
        try:
            yield p, os.stat(p)
        except OSError:
            return


def unsafe_ancestor(path: Path, username: str | None = None) -> tuple[Path, str] | None:
    """The first directory from / down to path (inclusive) that others could change."""
    for p, st in _ancestors(path):
        why = writable_by_others(st, username)
        if why:
            return p, why
    return None


def unsearchable_ancestor(path: Path) -> Path | None:
    """The first directory on the way to path that "other" cannot traverse (no o+x)."""
    for p, st in _ancestors(path):
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
            return p
    return None


def private_mode(base: int, gid: int, username: str | None = None, umask: int = 0o022) -> int:
    """Owner bits from base; group bits (from base, limited by umask) only if the group is safe."""
    mode = base & 0o700
    if group_is_safe(gid, username):
        mode |= (base & 0o070) & ~umask
    return mode | (base & 0o007)


def current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def create_private_file(path: Path, text: str = "", base: int = 0o660) -> None:
    """Create a new file (never overwriting): owner rw, group bits only for a safe group."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        st = os.fstat(fd)
        os.fchmod(fd, private_mode(base, st.st_gid, umask=current_umask()))
    finally:
        os.close(fd)


def create_private_dir(path: Path, base: int = 0o750) -> None:
    """Create a new directory: owner rwx, group bits only for a safe group, other as in base."""
    os.mkdir(path, 0o700)
    st = os.stat(path)
    os.chmod(path, private_mode(base, st.st_gid, umask=current_umask()))


def on_the_way(path: str | Path, include_final: bool = True,
               cache: dict[str, os.stat_result | None] | None = None) -> list[tuple[Path, os.stat_result]]:
    """(path, lstat) of every directory and symlink from / down to `path`, following symlinks
    (a link is listed, then the components of its target). The final component is left out
    when include_final is False. Stops quietly at the first one that cannot be stat'ed."""
    return [(Path(p), st) for p, st in _walk(path, include_final, cache)]


def _walk(path: str | Path, include_final: bool = True,
          cache: dict[str, os.stat_result | None] | None = None) -> list[tuple[str, os.stat_result]]:
    """on_the_way() on plain strings: it runs for several paths at every process start, and
    pathlib's parsing cost more than the lstat calls themselves."""
    cache = {} if cache is None else cache
    out: list[tuple[str, os.stat_result]] = []
    current = "/"
    pending = os.path.abspath(path).split("/")[1:]
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        if name in ("", "."):
            continue
        current = current.rstrip("/") + "/" + name
        st = cache.get(current, False)
        if st is False:
            try:
                st = cache[current] = os.lstat(current)
            except OSError:
                st = cache[current] = None
        if st is None:
            break
        if stat.S_ISLNK(st.st_mode):
            out.append((current, st))
            hops += 1
            try:
                target = os.readlink(current)
            except OSError:
                break
            if hops > 40:
                break
            if target.startswith("/"):
                current = "/"
            else:
                current = os.path.dirname(current)
            pending = target.split("/") + pending
            continue
        if pending or include_final:
            out.append((current, st))
    return out


def writable_on_the_way(path: str | Path, username: str | None = None, include_final: bool = True,
                        cache: dict[str, os.stat_result | None] | None = None) -> tuple[Path, str] | None:
    """The first directory (or, where asked, the final file) on the way to `path`, links followed,
    that others could change, and why; None when there is none. A symlink's own mode means
    nothing (the directory holding it decides who can replace it), so links are passed over."""
    for p, st in _walk(path, include_final, cache):
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue  # a device is writable by all (/dev/null) and a FIFO is refused where it is read
        why = writable_by_others(st, username)
        if why:
            return Path(p), why
    return None


def foreign_owned(paths: list[tuple[str | Path, bool]], trusted: set[int]) -> list[tuple[Path, int]]:
    """For each path, the first directory or symlink (or, where asked, the final file) on the way
    to it whose owner is not in `trusted` (the site's user and root): that owner can rename it
    and put something else in its place. Each (path, owner uid) once, in walking order."""
    cache: dict[str, os.stat_result | None] = {}
    seen: dict[str, int] = {}
    for path, include_final in paths:
        for p, st in _walk(path, include_final, cache):
            if st.st_uid not in trusted:
                # The first one is enough: its owner controls everything below it.
                seen.setdefault(p, st.st_uid)
                break
    return [(Path(p), owner) for p, owner in seen.items()]


def is_group_member(uid: int, group: str) -> bool:
    """Is the user with this uid a member (primary or supplementary) of `group`?"""
    try:
        pw = pwd.getpwuid(uid)
        gr = grp.getgrnam(group)
    except KeyError:
        return False
    return pw.pw_gid == gr.gr_gid or pw.pw_name in gr.gr_mem
