"""The catalogue of checks. Each returns a list of Problem; none raises.

`runtime_problems` runs inside the app process at start-up (get_app). `shell_problems` adds
what only the developer's shell sees (world bits on the way, group membership, the startup
file). `wsgi-shim check` runs both and then imports the app in a subprocess.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from shim.runtime.config import Config
from shim.runtime.permissions import (
    foreign_owned,
    is_group_member,
    name_of_group,
    name_of_user,
    readable_by_others,
    unsafe_ancestor,
)
from shim.runtime.problems import Problem
from shim.runtime import sitepaths
from shim.runtime.sitepaths import record_file_problems, site_paths, site_uid, writable_problems


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _site_packages(prefix: str) -> Path:
    """The venv's site-packages: the sys.path entry under prefix (sysconfig finds the same but costs
    a millisecond or two at every start); sysconfig only when sys.path has none."""
    for entry in sys.path if prefix == sys.prefix else ():
        if entry.startswith(prefix + "/") and entry.endswith("-packages"):
            return Path(entry)
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def _who_runs() -> str:
    """Whose Python the running one is, for venv-mismatch: Passenger's only in a real start."""
    if os.environ.get("WSGI_SHIM_PREVIEW") == "1":
        return "what the preview (wsgi-shim serve) runs"
    if os.environ.get("IN_PASSENGER") == "1" and os.environ.get("WSGI_SHIM_PROBE") != "1":
        return "what Passenger uses now"
    return "the Python this check runs in, not necessarily Passenger's"


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
                       f"({running}/bin/python is {_who_runs()})."))
    if Path(os.path.realpath(running)).is_relative_to(os.path.realpath(cfg.app_root)):
        problems.append(Problem(
            "venv-inside-approot", f"The venv {running} lies inside the app root {cfg.app_root}.",
            where, "Recreate the venv next to the app root (e.g. `inv venv`, or python3 -m venv SITE/venv, "
                   "then install the app's requirements and wsgi-shim into it) and point passenger_python "
                   "at it; do not move it: a moved venv's scripts still name the old path. Files inside "
                   "the app root can be reached by the app and are deployed over; the venv must not be."))
    for path in (running, running / "bin", _site_packages(prefix)):
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
    if os.environ.get("WSGI_SHIM_PREVIEW") == "1":  # `wsgi-shim serve`: not Passenger's choice
        return [preview_limit(cfg, kind, now, wanted) for kind, now, wanted in
                (("user", user, cfg.passenger_user), ("group", group, cfg.passenger_group))
                if wanted and now != wanted]
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


PREVIEW_FIX_ENV = "WSGI_SHIM_PREVIEW_FIX"  # set by the preview when it could not take the identity


def preview_limit(cfg: Config, kind: str, now: str, wanted: str) -> Problem:
    """The preview (`wsgi-shim serve`) could not run the app as the site's user or group: a limit
    of the preview, never a reason to change config.toml (Passenger does run it as configured)."""
    fix = os.environ.get(PREVIEW_FIX_ENV) or (
        f"Keep passenger_{kind} = \"{wanted}\" (Passenger runs the site as {wanted}). To preview it that "
        f"way, run the preview as root, or as a member of the site's group.")
    return Problem("preview-identity",
                   f"This preview runs the app as {kind} '{now}', not as passenger_{kind} '{wanted}' as Passenger "
                   "does: a limit of the preview (wsgi-shim serve), not a problem of the site.",
                   f"{cfg.file}, [passenger] passenger_{kind}", fix)


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
            from shim.runtime.files import kind_of

            problems.append(Problem("secret-not-file", f"secret_files.{key}: {path} is {kind_of(st.st_mode)}, "
                                                       "not a regular file.",
                                    where, "Point it at a regular file holding the secret."))
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
        problems += _short_secret(cfg, key, where)
    return problems


def _short_secret(cfg: Config, key: str, where: str) -> list[Problem]:
    from shim.runtime.redact import MIN_MASK_LENGTH

    content = cfg.secret_contents().get(key)
    if isinstance(content, str) and 0 < len(content.strip()) < MIN_MASK_LENGTH:
        return [Problem("secret-short", f"secret_files.{key} holds fewer than {MIN_MASK_LENGTH} characters, so "
                                        "it is not masked in logs and pages (masking so short a value would "
                                        "garble every traceback and show where it occurs).", where,
                        f"Use a secret of at least {MIN_MASK_LENGTH} characters (a short one is guessable "
                        "anyway), e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'.",
                        severity="warning")]
    return []


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


def maintenance_state(maint_txt: Path) -> tuple[bool, list[Problem]]:
    """Is tmp/maint.txt there, and a problem when tmp/ cannot be searched (mode 000, another
    owner's 700): then nobody can tell whether maintenance is on, and the config cache cannot
    live there. A stat, where Path.exists() would raise PermissionError into the start."""
    try:
        os.stat(maint_txt)
        return True, []
    except FileNotFoundError:
        return False, []
    except OSError as exc:
        tmp = maint_txt.parent
        st = _stat(tmp)
        mode = f" (mode {stat.filemode(st.st_mode)})" if st is not None else ""
        return False, [Problem(
            "tmp-unreadable", f"The site's user cannot look into tmp/{mode}: {exc.strerror or exc}. wsgi-shim cannot "
                              "see tmp/maint.txt (maintenance mode), nor keep its config cache there.", str(tmp),
            f"chmod 700 {tmp} (the site's user needs rwx on it; Passenger watches tmp/restart.txt as root), and "
            f"make sure the site's user owns it: ls -ld {tmp}.")]


def chdir_problems(cfg: Config) -> list[Problem]:
    path = cfg.chdir_path
    where = f"{cfg.file}, [wsgi] chdir"
    if not path.exists():
        if cfg.chdir.split("/")[0] == "current":  # a site served from releases (wsgi-shim deploy)
            from shim.runtime import advice

            fix = (f"Nothing is deployed yet: {advice.command('deploy', cfg.app_root.parent, 'SOURCE', task_args=())}"
                   " (or inv deploy) creates it.")
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


MAINT_PAGE_LIMIT = 1024 * 1024  # a maintenance page is a few KiB of HTML


def maintenance_page_refusal(cfg: Config) -> str:
    """Why [maintenance] page must not be served to the public, or "": it names config.toml, a
    secret file or the debug token file (the page is shown to every visitor)."""
    page = cfg.maintenance_page_path
    if page is None:
        return ""
    private = {"config.toml": cfg.file, "the debug token file": cfg.logging.debug_token_file,
               **{f"the secret file of {k}": v for k, v in cfg.secret_files.items()}}
    real = os.path.realpath(page)
    for name, path in private.items():
        if path and (os.path.realpath(path) == real or _same_file(path, page)):
            return f"names {name}, which would be shown to every visitor"
    return ""


def _same_file(a: str | Path, b: str | Path) -> bool:
    """The same inode: a hard link to config.toml has a path of its own."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_maintenance_page(cfg: Config) -> bytes:
    """The custom maintenance page's bytes. Raises OSError (files.NotReadable says why)."""
    from shim.runtime.files import NotReadable, read_regular

    page = cfg.maintenance_page_path
    refusal = maintenance_page_refusal(cfg)
    if page is None or refusal:
        raise NotReadable(page or "", refusal or "is not set")
    unsafe = sitepaths.refusal(cfg, page)  # another user's page would be served on the site's origin
    if unsafe:
        raise NotReadable(page, unsafe)
    return read_regular(page, MAINT_PAGE_LIMIT)


def maintenance_problems(cfg: Config) -> list[Problem]:
    page = cfg.maintenance_page_path
    if page is None:
        return []
    refusal = maintenance_page_refusal(cfg)
    if refusal:
        return [Problem("maint-page-private", f"[maintenance] page {refusal}; the default page is shown "
                                              "instead.", f"{cfg.file}, [maintenance] page = {page}",
                        "Point [maintenance] page at an HTML file made for visitors, e.g. maintenance.html.",
                        severity="warning")]
    from shim.runtime.files import why_not

    if sitepaths.refusal(cfg, page):
        return []  # reported as owner-foreign or path-writable, which block the start
    try:
        read_maintenance_page(cfg)
    except OSError as exc:
        return [Problem("maint-page-unreadable", f"The custom maintenance page {why_not(exc)}.",
                        f"{cfg.file}, [maintenance] page = {page}",
                        "Create the file (a regular file of at most 1 MiB) or correct the path; the default "
                        "page is shown meanwhile.", severity="warning")]
    return []


def ownership_problems(cfg: Config, prefix: str | None = None) -> list[Problem]:
    """Who owns the directories on the way to the app root, config.toml, passenger_wsgi.py, the
    venv and the secret files. Anyone but root and the site's user who owns one of them can
    rename it and put their own code, venv, config or secret in its place, which then runs as
    the site's user. Such an owner blocks the start, unless they are a member of the site's
    group (a shared project directory of a research group): then it is a warning."""
    uid = site_uid(cfg)
    paths: list[tuple[str | Path, bool]] = [(cfg.app_root / "config.toml", True),
                                            (cfg.app_root / "passenger_wsgi.py", True)]
    if cfg.passenger_python and os.path.isabs(cfg.passenger_python):
        paths.append((cfg.passenger_python, True))
    if prefix:
        paths.append((prefix, True))
    paths += [(v, False) for v in cfg.secret_files.values() if os.path.isabs(v)]
    # chdir (and the release `current` points to), the maintenance page, the log, the start
    # records, the debug token file: their owners decide as much as the app root's do.
    paths += [(path, True) for _, path, _ in site_paths(cfg)]
    problems = []
    user = name_of_user(uid)
    # This process's user too: Passenger runs the app as the site's user (a wrong passenger_user
    # is reported as user-mismatch, not as every file being someone else's).
    for path, owner in foreign_owned(paths, {0, uid, os.geteuid()}):
        who = name_of_user(owner)
        if cfg.passenger_group and is_group_member(owner, cfg.passenger_group):
            problems.append(Problem(
                "owner-group-member",
                f"{path} is owned by {who}, a member of the site's group '{cfg.passenger_group}', not by "
                f"{user} or root: {who} can rename it and put other code, a venv, config.toml or a secret "
                f"in its place, which would then run as {user}.", str(path),
                f"Fine for a shared project directory whose owner you trust. Otherwise ask the sysadmins to "
                f"chown root {path}, or move the site under a directory owned by {user}.",
                severity="warning"))
        else:
            problems.append(Problem(
                "owner-foreign",
                f"{path} is owned by {who}, who is neither the site's user ({user}) nor root: {who} can "
                f"rename it and put other code, a venv, config.toml, a secret, a page or a log in its place, "
                f"which the site would then use as {user}.", str(path),
                f"Ask the sysadmins to chown root {path} (or chown {user} it if it is the site's own), or "
                f"move the site, its venv and its secrets under directories owned by {user} or root."))
    return problems


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
    problems += ownership_problems(cfg, sys.prefix if sys.prefix != sys.base_prefix else None)
    problems += writable_problems(cfg)
    problems += record_file_problems(cfg)
    if cfg.passenger_app_root and os.path.realpath(cfg.passenger_app_root) != os.path.realpath(cfg.app_root):
        problems.append(Problem(
            "approot-mismatch", f"config.toml says passenger_app_root = {cfg.passenger_app_root}, but the app "
                                f"runs from {cfg.app_root}.", f"{cfg.file}, [passenger] passenger_app_root",
            f"Set passenger_app_root = \"{cfg.app_root}\" (or ask the sysadmins to fix PassengerAppRoot)."))
    return problems
