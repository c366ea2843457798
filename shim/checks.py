"""The catalogue of checks. Each returns a list of Problem; none raises.

`runtime_problems` runs inside the app process at start-up (get_app). `shell_problems` adds
what only the developer's shell sees (world bits on the way, group membership, the startup
file). `wsgi-shim check` runs both and then imports the app in a subprocess.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import sys
from pathlib import Path

from shim.config import Config
from shim.layout import Site
from shim.permissions import (
    name_of_group,
    name_of_user,
    readable_by_others,
    unsafe_ancestor,
    unsearchable_ancestor,
    writable_by_others,
)
from shim.problems import Problem


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def venv_problems(cfg: Config, prefix: str | None = None, base_prefix: str | None = None) -> list[Problem]:
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = sys.base_prefix if base_prefix is None else base_prefix
    problems: list[Problem] = []
    where = f"{cfg.file}, [passenger] passenger_python"
    if prefix == base_prefix:
        problems.append(Problem(
            "venv-none", f"The site runs on a Python that is not a virtual environment ({sys.executable}).",
            where, "Create a venv for the site (`inv venv` or python3 -m venv SITE/venv), install wsgi-shim "
                   "into it, and have PassengerPython point at SITE/venv/bin/python."))
        return problems
    running = Path(prefix)
    if cfg.venv is not None and os.path.isabs(cfg.passenger_python):
        configured = cfg.venv
        if os.path.realpath(running) != os.path.realpath(configured):
            problems.append(Problem(
                "venv-mismatch",
                f"The site runs in the venv {running}, but passenger_python names the venv {configured}.",
                where, "Make passenger_python and Apache's PassengerPython name the same venv "
                       f"({running}/bin/python is what Passenger uses now)."))
    if Path(os.path.realpath(running)).is_relative_to(os.path.realpath(cfg.app_root)):
        problems.append(Problem(
            "venv-inside-approot", f"The venv {running} lies inside the app root {cfg.app_root}.",
            where, "Move the venv next to the app root (e.g. SITE/venv): files inside the app root can "
                   "be reached by the app and are deployed over; the venv must not be."))
    import sysconfig  # only here: it is not needed on a healthy start otherwise

    for path in (running, running / "bin", Path(sysconfig.get_paths()["purelib"])):
        bad = unsafe_ancestor(path, cfg.passenger_user or None)
        if bad:
            problems.append(Problem(
                "venv-writable",
                f"The venv is not write-protected: {bad[0]} is {bad[1]}. Whoever can write there can run "
                "code as the site.", str(bad[0]),
                f"chmod go-w {bad[0]} (and make sure no directory above it is writable by others)."))
            break
    return problems


def identity_problems(cfg: Config) -> list[Problem]:
    """The process runs as passenger_user and passenger_group (checked inside the app process)."""
    problems: list[Problem] = []
    user, group = name_of_user(os.geteuid()), name_of_group(os.getegid())
    if cfg.passenger_user and user != cfg.passenger_user:
        problems.append(Problem(
            "user-mismatch", f"The site runs as user '{user}', but config.toml says passenger_user = "
                             f"'{cfg.passenger_user}'.", f"{cfg.file}, [passenger] passenger_user",
            f"If '{user}' is right, set passenger_user = \"{user}\"; otherwise ask the sysadmins to set "
            f"PassengerUser {cfg.passenger_user}."))
    if cfg.passenger_group and group != cfg.passenger_group:
        problems.append(Problem(
            "group-mismatch", f"The site runs as group '{group}', but config.toml says passenger_group = "
                              f"'{cfg.passenger_group}'.", f"{cfg.file}, [passenger] passenger_group",
            f"If '{group}' is right, set passenger_group = \"{group}\"; otherwise ask the sysadmins to set "
            f"PassengerGroup {cfg.passenger_group}."))
    return problems


def secret_problems(cfg: Config) -> list[Problem]:
    """Secret files: absolute, readable, regular, and not readable by others (like ssh keys)."""
    problems: list[Problem] = []
    for key, value in cfg.secret_files.items():
        where = f"{cfg.file}, [secret_files] {key}"
        path = Path(value)
        if not path.is_absolute():
            problems.append(Problem("secret-relative", f"secret_files.{key} is not an absolute path.", where,
                                    "Write the file's full path, starting with /."))
            continue
        st = _stat(path)
        if st is None:
            exists = os.path.lexists(path)
            problems.append(Problem(
                "secret-missing" if not exists else "secret-unreadable",
                f"secret_files.{key}: {path} " + ("does not exist." if not exists else
                                                  "cannot be reached (a directory on the way is not searchable)."),
                where, "Create the file (mode 600) or correct the path."))
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(Problem("secret-not-file", f"secret_files.{key}: {path} is not a regular file.",
                                    where, "Point it at a file holding the secret."))
            continue
        if not os.access(path, os.R_OK):
            problems.append(Problem("secret-unreadable",
                                    f"secret_files.{key}: {path} is not readable by the site's user.", where,
                                    "Make the site's user the owner: chmod 600 the file (640 for a project group)."))
            continue
        loose = st.st_mode & 0o007 or readable_by_others(st, cfg.passenger_user or None)
        if loose:
            problems.append(Problem(
                "secret-exposed", f"secret_files.{key}: {path} is accessible to other users "
                                  f"(mode {stat.filemode(st.st_mode)}).", where,
                f"chmod 600 {path} (or 640 with a project group). Like ssh keys, secrets must be private."))
    return problems


def environment_problems(cfg: Config, environ: dict[str, str] | None = None) -> list[Problem]:
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    problems = []
    for key, value in cfg.env_vars().items():
        if key in environ and environ[key] != value:
            section = "secret_files" if key in cfg.secret_files else "environment"
            problems.append(Problem(
                "env-conflict", f"{key} is already set in the process environment with a different value, "
                                f"and config.toml [{section}] sets it too.", f"{cfg.file}, [{section}] {key}",
                "Set it in one place only: remove it from config.toml, or from where else it is set "
                "(~/.bashrc, ~/.profile: Passenger starts the app through your login shell)."))
    return problems


def chdir_problems(cfg: Config) -> list[Problem]:
    path = cfg.chdir_path
    where = f"{cfg.file}, [wsgi] chdir"
    if not path.exists():
        if cfg.chdir.split("/")[0] == "current":  # a site served from releases (wsgi-shim deploy)
            fix = "Nothing is deployed yet: wsgi-shim deploy SITE SOURCE (or inv deploy) creates it."
        else:
            fix = "Create the directory or correct chdir (relative paths start at the app root)."
        return [Problem("chdir-missing", f"[wsgi] chdir {path} does not exist.", where, fix)]
    if not path.is_dir():
        return [Problem("chdir-not-dir", f"[wsgi] chdir {path} is not a directory.", where,
                        "Point chdir at the directory holding your project's top-level package.")]
    if not os.access(path, os.R_OK | os.X_OK):
        return [Problem("chdir-unreadable", f"[wsgi] chdir {path} cannot be read by the site's user.", where,
                        f"chmod u+rx {path}")]
    return []


def config_file_problems(cfg: Config) -> list[Problem]:
    st = _stat(cfg.file)
    if st is None:
        return []
    why = readable_by_others(st, cfg.passenger_user or None)
    if why:
        return [Problem("config-exposed", f"config.toml is {why}; it names secret files and may hold passwords.",
                        str(cfg.file), f"chmod 600 {cfg.file} (640 if its group is the project group).")]
    return []


def maintenance_problems(cfg: Config) -> list[Problem]:
    page = cfg.maintenance_page_path
    if page is None:
        return []
    try:
        with open(page, "rb") as f:
            f.read(1)
    except OSError as exc:
        return [Problem("maint-page-unreadable", f"The custom maintenance page cannot be read: {exc.strerror}.",
                        f"{cfg.file}, [maintenance] page = {page}",
                        "Create the file or correct the path; the default page is shown meanwhile.",
                        severity="warning")]
    return []


def runtime_problems(cfg: Config, check_identity: bool = True) -> list[Problem]:
    """Everything get_app() checks before importing the app."""
    problems = venv_problems(cfg)
    if check_identity:
        problems += identity_problems(cfg)
    problems += config_file_problems(cfg)
    problems += secret_problems(cfg)
    problems += environment_problems(cfg)
    problems += chdir_problems(cfg)
    problems += maintenance_problems(cfg)
    if cfg.passenger_app_root and os.path.realpath(cfg.passenger_app_root) != os.path.realpath(cfg.app_root):
        problems.append(Problem(
            "approot-mismatch", f"config.toml says passenger_app_root = {cfg.passenger_app_root}, but the app "
                                f"runs from {cfg.app_root}.", f"{cfg.file}, [passenger] passenger_app_root",
            f"Set passenger_app_root = \"{cfg.app_root}\" (or ask the sysadmins to fix PassengerAppRoot)."))
    return problems


# ---- what only the shell sees -------------------------------------------------------------


def _member(user: str, group: str) -> bool:
    try:
        gr = grp.getgrnam(group)
        pw = pwd.getpwnam(user)
    except KeyError:
        return False
    return pw.pw_gid == gr.gr_gid or user in gr.gr_mem


def account_problems(cfg: Config, me: str) -> list[Problem]:
    problems = []
    where = f"{cfg.file}, [passenger]"
    user_ok = group_ok = True
    if cfg.passenger_user:
        try:
            pwd.getpwnam(cfg.passenger_user)
        except KeyError:
            user_ok = False
            problems.append(Problem("user-unknown", f"passenger_user '{cfg.passenger_user}' is not a user here.",
                                    f"{where} passenger_user", "Correct the user name (see `id -un`)."))
    if cfg.passenger_group:
        try:
            grp.getgrnam(cfg.passenger_group)
        except KeyError:
            group_ok = False
            problems.append(Problem("group-unknown", f"passenger_group '{cfg.passenger_group}' is not a group here.",
                                    f"{where} passenger_group", "Correct the group name (see `id -Gn`)."))
    if user_ok and group_ok and cfg.passenger_user and cfg.passenger_group:
        if not _member(cfg.passenger_user, cfg.passenger_group):
            problems.append(Problem(
                "user-not-in-group", f"passenger_user '{cfg.passenger_user}' is not a member of passenger_group "
                                     f"'{cfg.passenger_group}'.", f"{where} passenger_group",
                "Ask the sysadmins to add the user to the group, or choose a group the user belongs to."))
        if me != cfg.passenger_user and not _member(me, cfg.passenger_group):
            problems.append(Problem(
                "you-not-in-group", f"You ({me}) are neither the site's user nor a member of '{cfg.passenger_group}', "
                                    "so you cannot manage this site's files.", f"{where} passenger_group",
                "Run wsgi-shim as the site's user, or ask to be added to the project group."))
    return problems


def python_problems(cfg: Config) -> list[Problem]:
    if not cfg.passenger_python or not os.path.isabs(cfg.passenger_python):
        return []
    where = f"{cfg.file}, [passenger] passenger_python"
    python = Path(cfg.passenger_python)
    if not python.exists():
        return [Problem("python-missing", f"passenger_python {python} does not exist.", where,
                        "Create the venv (`inv venv`) or correct the path.")]
    if not os.access(python, os.X_OK):
        return [Problem("python-not-executable", f"passenger_python {python} cannot be run.", where,
                        "Build the venv from a Python every site user can execute (e.g. /usr/bin/python3 or "
                        "one built with `inv build-python` into project space).")]
    if not (python.parent.parent / "pyvenv.cfg").exists():
        return [Problem("venv-none", f"passenger_python {python} is not inside a virtual environment.", where,
                        "Create a venv for the site and point passenger_python at its bin/python.")]
    return []


def startup_file_problems(site: Site, cfg_user: str | None) -> list[Problem]:
    path = site.passenger_wsgi
    st = _stat(path)
    if st is None:
        return [Problem("wsgi-file-missing", "passenger_wsgi.py does not exist.", str(path),
                        "Run `wsgi-shim install` or create it with: import shim; application = shim.get_app()")]
    if not stat.S_ISREG(st.st_mode):
        return [Problem("wsgi-file-missing", "passenger_wsgi.py is not a regular file.", str(path),
                        "Replace it with a file containing: import shim; application = shim.get_app()")]
    problems = []
    why = readable_by_others(st, cfg_user)
    if why:
        problems.append(Problem("wsgi-file-exposed", f"passenger_wsgi.py is {why}.", str(path),
                                f"chmod 600 {path} (640 with a project group)."))
    try:
        source = path.read_bytes()
        compile(source, str(path), "exec")
    except OSError as exc:
        problems.append(Problem("wsgi-file-unreadable", f"passenger_wsgi.py cannot be read: {exc.strerror}.",
                                str(path), f"chmod u+r {path}"))
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        problems.append(Problem("wsgi-file-syntax", f"passenger_wsgi.py does not parse: {exc.__class__.__name__}: "
                                                    f"{getattr(exc, 'msg', exc)}.",
                                f"{path}" + (f" line {line}" if line else ""),
                                "Fix the syntax, or restore it: import shim; application = shim.get_app()"))
    return problems


def tree_problems(site: Site, cfg_user: str | None) -> list[Problem]:
    """Directories: reachable by Passenger, not writable by others; tmp/ and its files sane."""
    problems = []
    approot = site.approot
    # Apache walks the document root before Passenger sees a request (measured: without o+x on
    # it or above it every URL is 404 or 403). The app root itself may be private.
    blocked = unsearchable_ancestor(site.docroot) if site.docroot.is_dir() else None
    if blocked:
        problems.append(Problem(
            "docroot-not-searchable", f"{blocked} is not searchable by other users, so Apache cannot reach the "
                                      "document root and answers 403/404 before Passenger runs.",
            str(blocked), f"chmod o+x {blocked}"))
    bad = unsafe_ancestor(approot, cfg_user)
    if bad:
        problems.append(Problem(
            "approot-writable", f"{bad[0]} is {bad[1]}: others could change the code the site runs.",
            str(bad[0]), f"chmod go-w {bad[0]} (o-w at least; g-w unless the group is your project group)."))
    tmp = site.tmp
    st = _stat(tmp)
    if st is None or not stat.S_ISDIR(st.st_mode):
        problems.append(Problem("tmp-missing", "The restart directory tmp/ is missing.", str(tmp),
                                f"mkdir {tmp} && chmod 700 {tmp} (Passenger watches tmp/restart.txt)."))
    else:
        why = writable_by_others(st, cfg_user)
        if why:
            problems.append(Problem("tmp-writable", f"tmp/ is {why}: others could restart the site or put it into "
                                                    "maintenance.", str(tmp), f"chmod go-w {tmp}"))
        for path in (site.restart_txt, site.maint_txt):
            fst = _stat(path)
            if fst is not None and not stat.S_ISREG(fst.st_mode):
                problems.append(Problem("tmp-entry-not-file", f"{path.name} is not a regular file.", str(path),
                                        f"Remove it: rm -r {path} (wsgi-shim maint/restart recreate it)."))
    if not site.docroot.is_dir():
        problems.append(Problem("docroot-missing", "The document root does not exist.", str(site.docroot),
                                f"mkdir {site.docroot} && chmod 755 {site.docroot}"))
    return problems


def passenger_version() -> tuple[int, ...] | None:
    """The installed Passenger's version (passenger-config), or None where it is not installed
    (often so on an access host: Passenger runs on the web servers)."""
    import shutil
    import subprocess

    tool = shutil.which("passenger-config")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    import re

    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def python_passenger_problems(python: tuple[int, ...], passenger: tuple[int, ...] | None,
                              where: str) -> list[Problem]:
    """Passenger before 6.0.19 loads WSGI apps with the `imp` module, which Python 3.12 removed:
    such an app dies in Passenger's loader, before wsgi-shim runs, with the generic page."""
    if tuple(python[:2]) < (3, 12):
        return []
    version = ".".join(map(str, python[:3]))
    if passenger is None:
        return [Problem("python-passenger-unknown",
                        f"The site's Python is {version}; Passenger older than 6.0.19 cannot load apps on "
                        "Python 3.12 or newer, and Passenger's version cannot be seen from here.", where,
                        "Ask the sysadmins which Passenger the web servers run; below 6.0.19, build the "
                        "site's Python from a 3.11 release (inv build-python --version 3.11.x).",
                        severity="warning")]
    if passenger < (6, 0, 19):
        return [Problem("python-too-new",
                        f"The site's Python is {version}, but Passenger {'.'.join(map(str, passenger))} "
                        "cannot load apps on Python 3.12 or newer (its loader imports `imp`): visitors would "
                        "get Passenger's generic error page.", where,
                        "Build the site's venv from Python 3.11 (inv build-python --version 3.11.x; inv venv), "
                        "or ask the sysadmins for Passenger 6.0.19 or newer.")]
    return []
