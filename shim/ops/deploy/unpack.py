"""Unpacking a release (security-critical): a directory or a tar archive into an empty directory.

Nothing may land outside the release: no absolute paths, no `..`, no writing through a link an
earlier member made, no link that leads outside (alone or in a chain), no devices or pipes.
Nothing may exhaust the disk or memory: the number of entries, the bytes written (counted as
the files' full sizes, so a sparse or compressed bomb is counted at what it would become) and
sparse members are limited, and every member is judged before the first byte is written.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from shim.ops.deploy.store import DeployError
from shim.runtime.permissions import create_private_dir, current_umask, private_mode

# Never part of a release: version control, byte code, virtual environments.
SKIP_NAMES = frozenset({".git", ".hg", ".svn", "__pycache__", "venv", ".venv"})


@dataclass(frozen=True)
class Limits:
    """What one release may hold; each has a flag of `wsgi-shim deploy` to raise it."""
    max_bytes: int = 1024 ** 3          # --max-bytes
    max_entries: int = 100_000          # --max-entries
    allow_sparse: bool = False          # --allow-sparse


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class _Budget:
    def __init__(self, limits: Limits, what: str):
        self.limits, self.what, self.entries, self.bytes = limits, what, 0, 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise DeployError(f"{self.what} has more than {self.limits.max_entries} entries (the limit "
                              "--max-entries); nothing was unpacked. If that many files are really "
                              "meant to be deployed, raise it: --max-entries N.")

    def take(self, size: int, name: str) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise DeployError(f"{self.what} would unpack to more than {_human(self.limits.max_bytes)} "
                              f"(the limit --max-bytes; reached at {name!r}); nothing was unpacked. "
                              "If the release is really that big, raise it: --max-bytes N.")


def skipped(rel: str) -> bool:
    return any(part in SKIP_NAMES for part in rel.split("/"))


def _file_mode(executable: bool, gid: int, umask: int) -> int:
    return private_mode(0o750 if executable else 0o640, gid, umask=umask)


def _check_parents(root: Path, rel: str) -> None:
    """No member may be written through a symbolic link made by an earlier member."""
    p = root
    for part in rel.split("/")[:-1]:
        p = p / part
        if p.is_symlink():
            raise DeployError(f"{rel} lies below the symbolic link {p.relative_to(root)}; refusing "
                              "to write through links.")


def safe_rel(name: str, what: str) -> str:
    """A member path as a clean relative path, or DeployError."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        raise DeployError(f"{what} {name!r} has an absolute path.")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DeployError(f"{what} {name!r} contains '..'.")
    return "/".join(parts)


def link_stays_inside(rel: str, target: str) -> bool:
    if target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved != ".." and not resolved.startswith("../")


def _make_dirs(root: Path, rel_dir: str) -> None:
    p = root
    for part in [x for x in rel_dir.split("/") if x]:
        p = p / part
        if p.is_symlink():
            raise DeployError(f"{p.relative_to(root)} is a symbolic link; refusing to write through it.")
        if not p.is_dir():
            create_private_dir(p)


def _write_file(path: Path, data_stream, executable: bool, gid: int, umask: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise DeployError(f"{path.name} appears twice in the source; refusing to guess which one.") from None
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(data_stream, out)
        os.fchmod(out.fileno(), _file_mode(executable, gid, umask))


def _judge_members(tar: tarfile.TarFile, archive: Path, limits: Limits) -> list[tarfile.TarInfo]:
    """Read the member list within the limits and refuse anything unsafe, before writing."""
    budget = _Budget(limits, str(archive))
    members = []
    try:
        while (m := tar.next()) is not None:
            budget.entry()
            members.append(m)
            rel = safe_rel(m.name, "archive member")
            if m.issparse() and not limits.allow_sparse:
                raise DeployError(f"archive member {m.name!r} is a sparse file ({_human(m.size)} when "
                                  "written out); releases are refused sparse files unless --allow-sparse.")
            if m.issym() and not link_stays_inside(rel, m.linkname):
                raise DeployError(f"archive member {m.name!r} is a symbolic link to {m.linkname!r}, "
                                  "outside the release.")
            if m.islnk():
                safe_rel(m.linkname, f"hard link {m.name!r} to")
            if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise DeployError(f"archive member {m.name!r} is a device, pipe or other special file.")
            if m.isfile() and not skipped(rel):
                budget.take(m.size, m.name)
    except (tarfile.TarError, OSError, EOFError, UnicodeError) as exc:
        raise DeployError(f"{archive} is damaged: {exc}") from None
    return members


def unpack_tar(archive: Path, dest: Path, limits: Limits = Limits()) -> int:
    """Extract ARCHIVE into the empty directory DEST, refusing anything that could land
    outside it or exceed LIMITS. Returns the number of files."""
    umask = current_umask()
    gid = os.stat(dest).st_gid
    count = 0
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DeployError(f"cannot read {archive} as a tar archive: {exc}") from None
    links: list[str] = []
    with tar:
        members = _judge_members(tar, archive, limits)
        for m in members:
            rel = safe_rel(m.name, "archive member")
            if not rel or skipped(rel):
                continue
            count += _extract_member(tar, m, rel, dest, gid, umask, links)
    check_links(dest, links)
    return count


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str, dest: Path, gid: int,
                    umask: int, links: list[str]) -> int:
    _check_parents(dest, rel)
    target = dest / rel
    if m.isdir():
        _make_dirs(dest, rel)
        return 0
    _make_dirs(dest, posixpath.dirname(rel))
    if m.issym():
        os.symlink(m.linkname, target)
        links.append(rel)
        return 0
    if m.islnk():
        source = dest / safe_rel(m.linkname, "hard link")
        if source.is_symlink() or not source.is_file() or \
                not os.path.realpath(source).startswith(os.path.realpath(dest) + "/"):
            raise DeployError(f"archive member {m.name!r} is a hard link to {m.linkname!r}, "
                              "which is not a file of the release.")
        with open(source, "rb") as src:
            _write_file(target, src, bool(m.mode & 0o111), gid, umask)
        return 1
    try:
        stream = tar.extractfile(m)
        _write_file(target, stream, bool(m.mode & 0o111), gid, umask)
    except (tarfile.TarError, EOFError) as exc:
        raise DeployError(f"archive member {m.name!r} is damaged: {exc}") from None
    return 1


def check_links(dest: Path, links: list[str]) -> None:
    """Links that each point inside can still reach outside in a chain (a -> ., b -> a/..)."""
    root = os.path.realpath(dest)
    for rel in links:
        real = os.path.realpath(dest / rel)
        if real != root and not real.startswith(root + "/"):
            raise DeployError(f"the symbolic link {rel!r} leads to {real}, outside the release.")


def _walk(source: Path, limits: Limits):
    """(path, rel, kind) of everything under SOURCE worth copying, within LIMITS."""
    budget = _Budget(limits, str(source))
    for root, dirs, files in os.walk(source):
        rel_root = os.path.relpath(root, source)
        rel_root = "" if rel_root == "." else rel_root
        # A virtual environment under another name is still one: it has pyvenv.cfg.
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES
                         and not (os.path.isfile(os.path.join(root, d, "pyvenv.cfg"))
                                  and not os.path.islink(os.path.join(root, d))))
        for name in sorted(dirs + files):
            if name in SKIP_NAMES and name in files:
                continue
            path = os.path.join(root, name)
            rel = posixpath.join(rel_root, name) if rel_root else name
            budget.entry()
            if not os.path.islink(path) and os.path.isfile(path):
                budget.take(os.stat(path).st_size, rel)
            yield path, rel


def copy_tree(source: Path, dest: Path, limits: Limits = Limits()) -> int:
    """Copy the directory SOURCE into the empty DEST (files private, links kept when they stay
    inside). Returns the number of files."""
    umask = current_umask()
    gid = os.stat(dest).st_gid
    entries = list(_walk(source, limits))  # judged (limits) before anything is written
    count = 0
    links: list[str] = []
    for path, rel in entries:
        if os.path.islink(path):
            target = os.readlink(path)
            if not link_stays_inside(rel, target):
                raise DeployError(f"{path} is a symbolic link to {target}, outside {source}.")
            os.symlink(target, dest / rel)
            links.append(rel)
        elif os.path.isdir(path):
            create_private_dir(dest / rel)
        elif os.path.isfile(path):
            st = os.stat(path)
            with open(path, "rb") as src:
                _write_file(dest / rel, src, bool(st.st_mode & 0o111), gid, umask)
            count += 1
        else:
            raise DeployError(f"{path} is a device, pipe or socket; refusing to copy it.")
    # Symlinked directories were recreated as links above; os.walk does not enter them.
    check_links(dest, links)
    return count


def unpack(source: Path, dest: Path, limits: Limits = Limits()) -> int:
    if source.is_dir():
        return copy_tree(source, dest, limits)
    if source.is_file():
        return unpack_tar(source, dest, limits)
    raise DeployError(f"{source} does not exist (give a directory or a .tar.gz).")
