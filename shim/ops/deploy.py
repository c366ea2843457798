"""Releases, deploys and rollbacks: `wsgi-shim deploy`, `rollback` and `releases`.

    SITE/
      releases/
        20261124T031500Z/          one directory per deploy (UTC time; -2, -3 ... if taken)
        20261124T040210Z/
      www-approot/
        config.toml                [wsgi] chdir = "current"
        current -> ../releases/20261124T040210Z

A deploy unpacks the new code into a release of its own, installs its requirements, points
`current` at it in one atomic step, checks the site exactly as `wsgi-shim check` does and only
then restarts; if the check finds a problem, `current` goes back to where it was. Nothing a
visitor can reach is ever half-written. Standard library only; never imported by get_app().
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shim.ops import control
from shim.runtime.layout import Site
from shim.runtime.permissions import create_private_dir, current_umask, private_mode

RELEASES = "releases"
CURRENT = "current"
NAME_RE = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")
# Never part of a release: version control, byte code, virtual environments.
SKIP_NAMES = frozenset({".git", ".hg", ".svn", "__pycache__", "venv", ".venv"})
DEFAULT_KEEP = 5


class DeployError(Exception):
    """A message for the user; whatever the step had started has been undone."""


# ---- where things are ------------------------------------------------------------------------


def releases_dir(site: Site) -> Path:
    return site.site / RELEASES


def current_link(site: Site) -> Path:
    return site.approot / CURRENT


def _sort_key(name: str) -> tuple[str, int]:
    m = NAME_RE.match(name)
    return (m.group(1), int(m.group(2) or 1)) if m else ("", 0)


def list_releases(site: Site) -> list[str]:
    """Release names, oldest first (names sort by time; a -N suffix after the plain name)."""
    try:
        entries = os.listdir(releases_dir(site))
    except FileNotFoundError:
        return []
    names = [n for n in entries if NAME_RE.match(n) and not os.path.islink(releases_dir(site) / n)
             and (releases_dir(site) / n).is_dir()]
    return sorted(names, key=_sort_key)


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


def release_path(site: Site, name: str) -> Path:
    return releases_dir(site) / name


# ---- config.toml: [wsgi] chdir = "current" ---------------------------------------------------

WSGI_HEADER_RE = re.compile(r"^\s*\[\s*wsgi\s*\]\s*(#.*)?$")
ANY_HEADER_RE = re.compile(r"^\s*\[")
CHDIR_RE = re.compile(r"""^(\s*chdir\s*=\s*)(?:"([^"\\]*)"|'([^']*)')(\s*(?:#.*)?)$""")


def chdir_is_current(chdir: str) -> bool:
    """`current`, or a directory inside it (e.g. current/src for a src layout)."""
    norm = posixpath.normpath(chdir) if chdir else "."
    return norm == CURRENT or norm.startswith(CURRENT + "/")


def init_config_text(text: str) -> str:
    """config.toml's text with [wsgi] chdir set to "current", changing that one line only
    (or adding it right below [wsgi]), so every comment stays. Raises DeployError when the
    file is not in a shape this can do safely."""
    import tomllib

    lines = text.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if WSGI_HEADER_RE.match(line)]
    if len(headers) != 1:
        raise DeployError("config.toml has no plain [wsgi] section line to edit; set "
                          '[wsgi] chdir = "current" by hand.')
    start = headers[0] + 1
    end = next((i for i in range(start, len(lines)) if ANY_HEADER_RE.match(lines[i])), len(lines))
    chdir_lines = [i for i in range(start, end) if re.match(r"^\s*chdir\s*=", lines[i])]
    if len(chdir_lines) > 1:
        raise DeployError("config.toml sets [wsgi] chdir more than once; fix it by hand.")
    if chdir_lines:
        i = chdir_lines[0]
        m = CHDIR_RE.match(lines[i].rstrip("\r\n"))
        value = None if m is None else (m.group(2) if m.group(2) is not None else m.group(3))
        if value is None or posixpath.normpath(value or ".") != ".":
            raise DeployError(f"config.toml line {i + 1} ({lines[i].strip()}) does not say chdir = \".\"; "
                              "--init only changes that case. Set chdir by hand to \"current\", or to "
                              "\"current/SUBDIR\" if your package lives in SUBDIR of what you deploy.")
        newline = lines[i][len(lines[i].rstrip("\r\n")):]
        lines[i] = f'{m.group(1)}"{CURRENT}"{m.group(4)}{newline}'
    else:
        newline = "\r\n" if lines[headers[0]].endswith("\r\n") else "\n"
        if not lines[headers[0]].endswith(("\n", "\r")):
            lines[headers[0]] += newline
        lines.insert(start, f'chdir = "{CURRENT}"{newline}')
    new = "".join(lines)
    # Proof that only chdir changed: both texts parse to the same data but for that key.
    try:
        old_data, new_data = tomllib.loads(text), tomllib.loads(new)
    except (tomllib.TOMLDecodeError, UnicodeError) as exc:
        raise DeployError(f"config.toml does not parse ({exc}); run wsgi-shim check SITE.") from None
    old_data.setdefault("wsgi", {})["chdir"] = CURRENT
    if old_data != new_data:
        raise DeployError('config.toml could not be changed safely by --init; set [wsgi] chdir = "current" '
                          "by hand.")
    return new


def write_keeping_mode(path: Path, text: str) -> None:
    """Replace a file atomically, with the same permissions."""
    mode = stat.S_IMODE(path.stat().st_mode)
    tmp = path.with_name(f".{path.name}.wsgi-shim-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def chdir_refusal(site: Site, chdir: str) -> str:
    shown = json.dumps(chdir) if chdir else "(not set: the app root)"
    return (f"{site.config_toml} has [wsgi] chdir = {shown}, but deploys serve the release that "
            f"{current_link(site)} points to. Set this line in its [wsgi] section:\n\n"
            f'    chdir = "{CURRENT}"\n\n'
            "and deploy right away: the first deploy creates `current` (until then the site cannot "
            'start). If your package lies in a subdirectory of what you deploy, use "current/SUBDIR". '
            "Or let wsgi-shim do both in one step: wsgi-shim deploy --init SITE SOURCE (when chdir "
            'is "." or not set).')


# ---- a lock, so two deploys never interleave -------------------------------------------------


@contextmanager
def locked(site: Site, prog: str) -> Iterator[None]:
    root = releases_dir(site)
    if not root.is_dir():
        create_private_dir(root)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(f"another deploy or rollback of {site.site} is running "
                              f"(it holds {root / '.lock'}); try again when it has finished.") from None
        yield
    finally:
        os.close(fd)


# ---- unpacking a release ---------------------------------------------------------------------


def new_release_name(site: Site) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # Within one second, after the highest suffix in use: a name freed by pruning is never
    # reused, as a newer release must sort after every older one.
    taken = [NAME_RE.match(n.removeprefix(".partial-")) for n in os.listdir(releases_dir(site))]
    used = [int(m.group(2) or 1) for m in taken if m and m.group(1) == stamp]
    n = max(used, default=0) + 1
    return stamp if n == 1 else f"{stamp}-{n}"


def _skipped(rel: str) -> bool:
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


def _safe_rel(name: str, what: str) -> str:
    """A member path as a clean relative path, or DeployError."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        raise DeployError(f"{what} {name!r} has an absolute path.")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DeployError(f"{what} {name!r} contains '..'.")
    return "/".join(parts)


def _link_stays_inside(rel: str, target: str) -> bool:
    if target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved != ".." and not resolved.startswith("../")


def _make_dirs(root: Path, rel_dir: str, gid: int, umask: int) -> None:
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


def unpack_tar(archive: Path, dest: Path) -> int:
    """Extract ARCHIVE into the empty directory DEST, refusing anything that could land
    outside it. Returns the number of files."""
    umask = current_umask()
    gid = os.stat(dest).st_gid
    count = 0
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DeployError(f"cannot read {archive} as a tar archive: {exc}") from None
    links: list[str] = []
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DeployError(f"{archive} is damaged: {exc}") from None
        # Every member is judged before anything is written: a hostile archive leaves nothing.
        for m in members:
            rel = _safe_rel(m.name, "archive member")
            if m.issym() and not _link_stays_inside(rel, m.linkname):
                raise DeployError(f"archive member {m.name!r} is a symbolic link to {m.linkname!r}, "
                                  "outside the release.")
            if m.islnk():
                _safe_rel(m.linkname, f"hard link {m.name!r} to")
            if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise DeployError(f"archive member {m.name!r} is a device, pipe or other special file.")
        for m in members:
            rel = _safe_rel(m.name, "archive member")
            if not rel or _skipped(rel):
                continue
            _check_parents(dest, rel)
            target = dest / rel
            if m.isdir():
                _make_dirs(dest, rel, gid, umask)
                continue
            _make_dirs(dest, posixpath.dirname(rel), gid, umask)
            if m.issym():
                os.symlink(m.linkname, target)
                links.append(rel)
            elif m.islnk():
                source = dest / _safe_rel(m.linkname, "hard link")
                if source.is_symlink() or not source.is_file() or \
                        not os.path.realpath(source).startswith(os.path.realpath(dest) + "/"):
                    raise DeployError(f"archive member {m.name!r} is a hard link to {m.linkname!r}, "
                                      "which is not a file of the release.")
                with open(source, "rb") as src:
                    _write_file(target, src, bool(m.mode & 0o111), gid, umask)
                count += 1
            else:
                stream = tar.extractfile(m)
                _write_file(target, stream, bool(m.mode & 0o111), gid, umask)
                count += 1
    _check_links(dest, links)
    return count


def _check_links(dest: Path, links: list[str]) -> None:
    """Links that each point inside can still reach outside in a chain (a -> ., b -> a/..)."""
    root = os.path.realpath(dest)
    for rel in links:
        real = os.path.realpath(dest / rel)
        if real != root and not real.startswith(root + "/"):
            raise DeployError(f"the symbolic link {rel!r} leads to {real}, outside the release.")


def copy_tree(source: Path, dest: Path) -> int:
    """Copy the directory SOURCE into the empty DEST (files private, links kept when they stay
    inside). Returns the number of files."""
    umask = current_umask()
    gid = os.stat(dest).st_gid
    count = 0
    links: list[str] = []
    for root, dirs, files in os.walk(source):
        rel_root = os.path.relpath(root, source)
        rel_root = "" if rel_root == "." else rel_root
        # A virtual environment under another name is still one: it has pyvenv.cfg.
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES
                         and not (os.path.isfile(os.path.join(root, d, "pyvenv.cfg"))
                                  and not os.path.islink(os.path.join(root, d))))
        for name in sorted(dirs + files):
            path = os.path.join(root, name)
            rel = posixpath.join(rel_root, name) if rel_root else name
            if name in SKIP_NAMES and name in files:
                continue
            if os.path.islink(path):
                target = os.readlink(path)
                if not _link_stays_inside(rel, target):
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
    _check_links(dest, links)
    return count


def unpack(source: Path, dest: Path) -> int:
    if source.is_dir():
        return copy_tree(source, dest)
    if source.is_file():
        return unpack_tar(source, dest)
    raise DeployError(f"{source} does not exist (give a directory or a .tar.gz).")


# ---- requirements ----------------------------------------------------------------------------


def install_requirements(python: str, release: Path) -> str:
    """pip install -r release/requirements.txt into the site venv; returns pip's last lines."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r",
           "requirements.txt"]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(cmd, cwd=release, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace")
    except OSError as exc:
        raise DeployError(f"cannot run {python} -m pip: {exc.strerror or exc}. Check passenger_python "
                          "in config.toml.") from None
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    if proc.returncode != 0:
        raise DeployError(f"pip install -r requirements.txt failed (exit {proc.returncode}):\n{tail}\n"
                          "Nothing was switched; the site still serves its current release. pip may "
                          "have installed some packages into the venv before it failed.")
    return tail


# ---- switching -------------------------------------------------------------------------------


def switch(site: Site, name: str) -> None:
    """Point `current` at release NAME in one step (a new link renamed over the old one)."""
    link = current_link(site)
    tmp = link.with_name(f".{CURRENT}.wsgi-shim-{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(f"../{RELEASES}/{name}", tmp)
    os.replace(tmp, link)


def unswitch(site: Site, previous: str | None) -> None:
    if previous is None:
        try:
            os.unlink(current_link(site))
        except FileNotFoundError:
            pass
    else:
        switch(site, previous)


def blocking_problems(site: Site) -> tuple[list, list]:
    """(errors, warnings) of `wsgi-shim check` on the site as it is now."""
    from shim.ops.checking import collect_problems

    problems, _ = collect_problems(site)
    return [p for p in problems if p.blocking], [p for p in problems if not p.blocking]


def restart(site: Site, wait: float, url: str | None, prog: str) -> int:
    """Touch restart.txt; with WAIT, wait for the new process as `wsgi-shim restart --wait` does."""

    starts = control.starts_path(site)
    before = time.time()
    control.touch_restart(site.restart_txt)
    if not wait:
        print("Restart requested: Passenger starts the new code on the site's next request.")
        return 0
    print(f"Restart requested; waiting up to {wait:g} s for the new process...")
    restarted = control.wait_for_new_start(starts, before, wait, url)
    if restarted.start is not None:
        print(restarted.report())
    else:
        print(f"{prog}: {restarted.report()}", file=sys.stderr)
    return 0 if restarted.ok else 1


def prune(site: Site, keep: int, protect: set[str]) -> list[str]:
    """Remove the oldest releases so that KEEP remain, never one in PROTECT."""
    names = list_releases(site)
    excess = len(names) - max(keep, len(protect & set(names)))
    removed = []
    for name in names:
        if excess <= 0:
            break
        if name in protect:
            continue
        shutil.rmtree(release_path(site, name), ignore_errors=True)
        removed.append(name)
        excess -= 1
    return removed


def _remove_partials(site: Site) -> None:
    """Leftovers of a deploy that was killed half-way (we hold the lock: none is running)."""
    for entry in os.listdir(releases_dir(site)):
        if entry.startswith(".partial-"):
            shutil.rmtree(releases_dir(site) / entry, ignore_errors=True)


# ---- the commands ----------------------------------------------------------------------------


def add_deploy_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `wsgi-shim deploy` after SITE (shim.cli adds SITE and -a)."""
    p.add_argument("source", metavar="SOURCE", help="the code to deploy: a directory or a .tar.gz/.tgz")
    p.add_argument("--maint", action="store_true",
                   help="show the maintenance page while deploying (e.g. for database migrations)")
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP, metavar="N",
                   help=f"keep the N newest releases (default {DEFAULT_KEEP}); the current and the "
                        "previous one are always kept")
    p.add_argument("--no-requirements", action="store_true",
                   help="do not pip install the release's requirements.txt")
    p.add_argument("--init", action="store_true",
                   help='first deploy of an existing site: change config.toml\'s [wsgi] chdir "." '
                        'to "current" (that line only)')
    _add_wait_arguments(p)


def _add_wait_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="after the restart, wait up to SECONDS until a new process has started "
                        "(needs --url), as wsgi-shim restart --wait does")
    p.add_argument("--url", help="request this URL while waiting (Passenger restarts on a request)")


def add_rollback_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", metavar="RELEASE", help="the release to go back to (default: the one "
                                                   "before the current one); see wsgi-shim releases")
    _add_wait_arguments(p)


def add_releases_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the releases as JSON")


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return 1


def _print_problems(problems: list) -> None:
    for p in problems:
        print(p.as_text() + "\n", file=sys.stderr)


def _load_chdir(site: Site, prog: str) -> tuple[str | None, int]:
    """[wsgi] chdir from config.toml; (None, exit code) when the config cannot be read."""
    from shim.runtime.config import load_config

    if not site.approot.is_dir():
        return None, _fail(prog, f"{site.approot} does not exist; is {site.site} a site? "
                                 "(wsgi-shim install creates it)")
    cfg, problems = load_config(site.approot)
    if cfg is None:
        _print_problems(problems)
        return None, _fail(prog, f"cannot read {site.config_toml} (problems above); nothing was changed.")
    return cfg.chdir, 0


def run_deploy(site: Site, args: argparse.Namespace) -> int:
    """`wsgi-shim deploy SITE SOURCE`: see the module docstring and docs/deploying.md."""
    prog = "wsgi-shim deploy"
    source = Path(args.source).absolute()
    if not os.path.exists(source):
        return _fail(prog, f"{source} does not exist (give a directory or a .tar.gz).")
    if args.keep < 1:
        _fail(prog, "--keep must be at least 1.")
        return 2
    if args.wait and not args.url:
        print("note: --wait without --url: the new process starts only when a request arrives.",
              file=sys.stderr)
    chdir, code = _load_chdir(site, prog)
    if chdir is None:
        return code
    new_config: str | None = None
    old_config: str | None = None
    if not chdir_is_current(chdir):
        if not args.init:
            return _fail(prog, chdir_refusal(site, chdir))
        try:
            old_config = site.config_toml.read_text()
            new_config = init_config_text(old_config)
        except (OSError, UnicodeError) as exc:
            return _fail(prog, f"cannot read {site.config_toml}: {exc}")
        except DeployError as exc:
            return _fail(prog, str(exc))
    try:
        with locked(site, prog):
            return _deploy(site, args, source, prog, old_config, new_config)
    except DeployError as exc:
        return _fail(prog, str(exc))
    except OSError as exc:
        return _fail(prog, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _deploy(site: Site, args, source: Path, prog: str, old_config: str | None,
            new_config: str | None) -> int:
    from shim.runtime.config import load_config

    previous = current_release(site)
    root = releases_dir(site)
    if source.is_dir() and os.path.realpath(root).startswith(os.path.realpath(source) + "/"):
        raise DeployError(f"{source} contains the releases directory {root}; deploy from your "
                          "project directory, not the site's.")
    _remove_partials(site)
    name = new_release_name(site)
    partial = root / f".partial-{name}"
    release = release_path(site, name)
    create_private_dir(partial)
    try:
        print(f"Unpacking {source} into {release} ...")
        count = unpack(source, partial)
        os.rename(partial, release)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"  {count} file{'s' if count != 1 else ''}")
    for stray in ("config.toml", "passenger_wsgi.py"):
        if (release / stray).exists():
            print(f"  note: the release holds a {stray}; the site uses {site.approot / stray}, "
                  "not this copy.")

    def discard() -> None:
        shutil.rmtree(release, ignore_errors=True)
        print(f"Removed the new release {name}.", file=sys.stderr)

    cfg, _ = load_config(site.approot)
    if (release / "requirements.txt").is_file() and not args.no_requirements:
        python = cfg.passenger_python if cfg else ""
        print(f"Installing requirements.txt: {python} -m pip install -r requirements.txt ...")
        try:
            tail = install_requirements(python, release)
        except BaseException:
            discard()
            raise
        done = [line for line in tail.splitlines() if line.startswith("Successfully installed")]
        print(f"  {done[-1]}" if done else "  all requirements already satisfied")
    elif (release / "requirements.txt").is_file():
        print("Skipping requirements.txt (--no-requirements).")

    maint_set = False
    switched = False

    def undo() -> None:
        """Back to exactly where the site was before this deploy (but for pip's packages)."""
        if switched:
            unswitch(site, previous)
            if old_config is not None:
                write_keeping_mode(site.config_toml, old_config)
        if maint_set:
            control.maint_off(site.maint_txt)
            control.touch_restart(site.restart_txt)
            print("Maintenance mode off again, as it was before the deploy.", file=sys.stderr)
        discard()

    try:
        if args.maint and not site.maint_txt.exists():
            control.maint_on(site.maint_txt)
            maint_set = True
            control.touch_restart(site.restart_txt)
            print("Maintenance mode on: visitors see the maintenance page until the deploy ends.")
        elif args.maint:
            print("Maintenance mode was already on; it stays on after the deploy.")

        print(f"Switching {current_link(site)} -> ../{RELEASES}/{name}"
              + (f" (was {previous})" if previous else " (first deploy)"))
        switched = True
        if new_config is not None:
            write_keeping_mode(site.config_toml, new_config)
            print(f'  set [wsgi] chdir = "{CURRENT}" in {site.config_toml} (--init)')
        switch(site, name)

        print("Checking the site as Passenger will load it (wsgi-shim check) ...")
        errors, warnings = blocking_problems(site)
    except BaseException:  # Ctrl-C or a failing disk half-way: never leave a half-done deploy
        undo()
        print(f"{prog}: interrupted; current is back to {previous or 'nothing'}.", file=sys.stderr)
        raise
    if errors:
        _print_problems(errors + warnings)
        undo()
        back = f"back to {previous}" if previous else "removed again (there was no earlier release)"
        print(f"{prog}: the new release has {len(errors)} problem{'s' if len(errors) != 1 else ''} "
              f"(listed above); current is {back}"
              + (", config.toml restored" if old_config is not None else "") + ".", file=sys.stderr)
        print("Nothing else was changed. Fix the problems and deploy again; `wsgi-shim check SITE` "
              "shows the site as it is now.", file=sys.stderr)
        return 1
    for p in warnings:
        print(p.as_text())
    print("  OK")

    if maint_set:
        control.maint_off(site.maint_txt)
        print("Maintenance mode off.")
    code = restart(site, args.wait, args.url, prog)

    removed = prune(site, args.keep, {name, previous} - {None})
    for old in removed:
        print(f"Removed old release {old} (keeping {args.keep}).")
    print(f"Deployed {name}." + (f" To go back to {previous}: wsgi-shim rollback {site.site}"
                                 if previous else ""))
    if code != 0:
        print(f"{prog}: the new release is live but its process did not start cleanly (see above)."
              + (f" wsgi-shim rollback {site.site} goes back to {previous}." if previous else ""),
              file=sys.stderr)
    return code


def run_rollback(site: Site, args: argparse.Namespace) -> int:
    """`wsgi-shim rollback SITE [--to RELEASE]`."""
    prog = "wsgi-shim rollback"
    chdir, code = _load_chdir(site, prog)
    if chdir is None:
        return code
    if not chdir_is_current(chdir):
        return _fail(prog, f"{site.config_toml} has [wsgi] chdir = {chdir or '(not set)'}, so the site "
                           f"does not run from releases; there is nothing to roll back to.")
    try:
        with locked(site, prog):
            return _rollback(site, args, prog)
    except DeployError as exc:
        return _fail(prog, str(exc))
    except OSError as exc:
        return _fail(prog, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _rollback(site: Site, args, prog: str) -> int:
    names = list_releases(site)
    current = current_release(site)
    if args.to:
        target = args.to.rstrip("/").rsplit("/", 1)[-1]
        if target not in names:
            listed = ", ".join(names) or "none"
            raise DeployError(f"there is no release {args.to!r} in {releases_dir(site)} (releases: {listed}).")
        if target == current:
            print(f"{target} is already the current release; nothing to do.")
            return 0
    else:
        if current is None:
            raise DeployError(f"nothing has been deployed to {site.site} yet, so there is nothing to roll "
                              "back to.")
        older = [n for n in names if _sort_key(n) < _sort_key(current)]
        if not older:
            raise DeployError(f"{current} is the oldest release there is; there is no earlier one to roll "
                              "back to. Deploy the code you want instead.")
        target = older[-1]
    print(f"Switching {current_link(site)} -> ../{RELEASES}/{target} (was {current or 'nothing'})")
    switch(site, target)
    print("Checking the site as Passenger will load it (wsgi-shim check) ...")
    errors, warnings = blocking_problems(site)
    if errors:
        unswitch(site, current)
        _print_problems(errors + warnings)
        print(f"{prog}: release {target} has {len(errors)} problem{'s' if len(errors) != 1 else ''} "
              f"(listed above); current is back to {current or 'nothing'}. Nothing else was changed.",
              file=sys.stderr)
        return 1
    for p in warnings:
        print(p.as_text())
    print("  OK")
    code = restart(site, args.wait, args.url, prog)
    print(f"Rolled back to {target}." + (f" To undo: wsgi-shim rollback {site.site} --to {current}"
                                         if current else ""))
    return code


def release_info(site: Site) -> dict:
    names = list_releases(site)
    try:
        current = current_release(site)
        error = None
    except DeployError as exc:
        current, error = None, str(exc)
    items = []
    for name in names:
        m = NAME_RE.match(name)
        deployed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(m.group(1), "%Y%m%dT%H%M%SZ"))
        items.append({"name": name, "path": str(release_path(site, name)), "deployed": deployed,
                      "current": name == current})
    return {"site": str(site.site), "current": current, "releases": items, "error": error}


def run_releases(site: Site, args: argparse.Namespace) -> int:
    """`wsgi-shim releases SITE [--json]`: the releases, newest first, current marked."""
    info = release_info(site)
    if getattr(args, "json", False):
        print(json.dumps(info, indent=2))
        return 1 if info["error"] else 0
    if info["error"]:
        print(f"wsgi-shim releases: {info['error']}", file=sys.stderr)
    if not info["releases"]:
        print(f"No releases in {releases_dir(site)} yet (wsgi-shim deploy SITE SOURCE makes one).")
        return 1 if info["error"] else 0
    for item in reversed(info["releases"]):
        mark = "*" if item["current"] else " "
        print(f"{mark} {item['name']}  deployed {item['deployed']}" + ("  (current)" if item["current"] else ""))
    if info["current"] is None and not info["error"]:
        print(f"none is current: {current_link(site)} does not exist (no deploy has finished yet).")
    return 1 if info["error"] else 0
