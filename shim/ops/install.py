"""`wsgi-shim install`: create a site's directories and files with safe modes, all or nothing."""

from __future__ import annotations

import grp
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

from shim.runtime.layout import Site
from shim.runtime import advice
from shim.runtime.permissions import create_private_dir, create_private_file, group_is_safe, private_mode
from shim.runtime.permissions import current_umask

PASSENGER_WSGI = """\
# Created by wsgi-shim. Passenger loads this file; wsgi-shim checks the site and config.toml,
# then serves your app, the maintenance page (while tmp/maint.txt exists) or an error page
# that names every problem and its fix.
try:
    import shim
except ImportError as exc:  # PassengerPython names a Python without wsgi-shim: say so, not "We're sorry"
    # Visitors get a plain page with an error id. The details (which Python Passenger runs) are
    # for the owner: a start record in logs/starts.jsonl, shown by `wsgi-shim status SITE` and
    # `wsgi-shim logs SITE --id ID`. Passenger's cwd is the app root.
    import json
    import os
    import sys
    import time

    _id = os.urandom(5).hex()
    _record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "epoch": time.time(),
               "pid": os.getpid(), "state": "error", "error_id": _id, "python": sys.executable,
               "problems": [{"code": "shim-not-installed", "severity": "error",
                             "what": "wsgi-shim is not installed in the Python that Passenger runs "
                                     "(%s): %s." % (sys.executable, exc),
                             "where": "PassengerPython (Apache) / [passenger] passenger_python",
                             "fix": "Make PassengerPython and passenger_python name the site venv's python, "
                                    "or install wsgi-shim into this one (inv install)."}]}
    try:
        if not os.path.isdir("logs"):
            os.mkdir("logs", 0o700)
        _fd = os.open("logs/starts.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
        try:
            os.write(_fd, (json.dumps(_record, ensure_ascii=True) + "\\n").encode())
        finally:
            os.close(_fd)
    except (OSError, ValueError):
        pass
    _page = ("<!DOCTYPE html><meta charset='utf-8'><meta name='viewport' content='width=device-width, "
             "initial-scale=1'><title>Site error</title><h1>This site could not start</h1>"
             "<p>Error id <code>%s</code>, %s. The site's owner can look it up with "
             "<code>wsgi-shim status</code>.</p>"
             % (_id, time.strftime("%d %B %Y, %H:%M UTC", time.gmtime()))).encode()

    def application(environ, start_response):
        start_response("500 Internal Server Error", [("Content-Type", "text/html; charset=utf-8"),
                                                     ("Content-Length", str(len(_page))),
                                                     ("X-Wsgi-Shim", "error")])
        return [_page]
else:
    application = shim.get_app()
"""

CONFIG_HEADER = """\
# config.toml for wsgi-shim -- read at every start of the site's app process.
# After a change run: wsgi-shim check SITE && wsgi-shim restart SITE
#
# [passenger]        must match what the sysadmins configured in Apache
#   passenger_user   = user the app runs as (PassengerUser); owner of the app root
#   passenger_group  = project group the app runs as (PassengerGroup)
#   passenger_python = absolute path of the site venv's python (PassengerPython); the venv
#                      must lie outside the app root and be writable only by you (and your
#                      project group)
#   passenger_app_root, passenger_restart_dir, web_doc_root = informational, for the sysadmins
#
# [wsgi]
#   app   = "package.module.attribute" or "package.module:attribute", e.g.
#           "mysite.wsgi.application" (Django) or "app.app" (Flask's app.py with app = Flask(...))
#   chdir = directory holding your top-level package, relative to the app root (default: the
#           app root). It becomes the working directory and the first entry of sys.path.
#
# [secret_files]     NAME = "/absolute/path/of/a/file" (mode 600, or 640 with a project group)
#                    The app gets the *path* in environment variable NAME; read the secret there.
# [environment]      NAME = "value" -- plain settings put into the app's environment.
#
# [maintenance]      page = "maint.html" (custom HTML shown in maintenance mode; relative to the
#                    app root), retry_after = 300 (seconds, sent as Retry-After)
#
# [logging]          the app log you can read (default logs/app.log in the app root):
#   enabled = true, file = "logs/app.log", max_bytes = 1048576, backups = 3, level = "INFO",
#   capture_output = true (print(), stderr, warnings, logging), catch_errors = true (a failing
#   request is logged with an error id; visitors see only the id),
#   debug_token_file = "" and debug_addresses = [] (who may see tracebacks), redact = [] (regexes)
#
# Full reference: docs/configuration.md in the wsgi-shim repository.

"""


class InstallError(Exception):
    """A message for the user; nothing was left behind."""


@dataclass
class InstallResult:
    site: Site
    created: list[Path]
    user: str
    group: str
    python: str
    warnings: list[str]


def default_python() -> str:
    if sys.prefix != sys.base_prefix:
        return str(Path(sys.prefix) / "bin" / "python")
    return ""


def render_config(site: Site, user: str, group: str, python: str, app: str) -> str:
    import tomli_w  # writes any path with correct quoting and escaping

    data = {
        "passenger": {
            "passenger_user": user,
            "passenger_group": group,
            "passenger_python": python,
            "passenger_app_root": str(site.approot),
            "passenger_restart_dir": str(site.tmp),
            "web_doc_root": str(site.docroot),
        },
        "wsgi": {"app": app, "chdir": "."},
        "secret_files": {},
        "environment": {},
    }
    return CONFIG_HEADER + tomli_w.dumps(data)


def install(site: Site, user: str | None = None, group: str | None = None, python: str | None = None,
            app: str = "app.application") -> InstallResult:
    """Create SITE's directories and files, all or nothing. Raises InstallError (nothing left behind)."""
    _refuse_bad_arguments(site, user, group)
    _refuse_bad_app(app)
    me = pwd.getpwuid(os.getuid()).pw_name
    created: list[Path] = []
    try:
        gid = _make_directories(site, me, created)
        user = user or me
        group = group or grp.getgrgid(gid).gr_name
        python = python or default_python() or str(site.default_venv / "bin" / "python")
        _make_files(site, render_config(site, user, group, python, app), created)
    except BaseException as exc:
        _remove(created)
        raise _as_install_error(exc, site) from None
    return InstallResult(site, created, user, group, python, _warnings(site, me, gid, user, python))


def _refuse_bad_app(app: str) -> None:
    """The rule config.toml's [wsgi] app follows, before anything is created (a site written
    with a bad value would only fail at its first start)."""
    import re

    from shim.runtime.config import APP_SPEC

    module, sep, attribute = app.partition(":") if ":" in app else app.rpartition(".")
    if not sep or not APP_SPEC.fullmatch(module) or not re.fullmatch(r"[A-Za-z_]\w*", attribute):
        raise InstallError(f"--app {app!r} is not module.attribute (or module:attribute), e.g. "
                           "app.application, app.app for Flask's app.py, mysite.wsgi.application for Django.")


def _refuse_bad_arguments(site: Site, user: str | None, group: str | None) -> None:
    if not site.site.is_absolute():
        raise InstallError(f"SITE must be an absolute path (starting with /), not '{site.site}'.")
    for name, value in (("--approot", site.approot_name), ("--docroot", site.docroot_name)):
        if "/" in value or value in ("", ".", ".."):
            raise InstallError(f"{name} must be a single directory name inside SITE, not '{value}'.")
    for path in (site.approot, site.docroot):
        if os.path.lexists(path):
            raise InstallError(f"{path} already exists; wsgi-shim install never overwrites anything. "
                               f"Run `{advice.command('check', site.site)}` to examine an existing site.")
    if site.approot_name == site.docroot_name:
        raise InstallError("--approot and --docroot must differ: the app's code must not be served as files.")
    for kind, lookup, value in (("user", pwd.getpwnam, user), ("group", grp.getgrnam, group)):
        try:
            if value:
                lookup(value)
        except (KeyError, UnicodeEncodeError):
            raise InstallError(f"There is no {kind} '{value}' on this machine (see `id`).") from None


def _make_directories(site: Site, me: str, created: list[Path]) -> int:
    """The site, app root, tmp/, document root and logs/; returns the app root's group id."""
    umask = current_umask()
    if not site.site.exists():
        if not site.site.parent.is_dir():
            raise InstallError(f"{site.site.parent} does not exist; create the site directory first.")
        os.mkdir(site.site, 0o755 & ~umask | 0o001)
        created.append(site.site)
    # Measured with real Passenger (tests/e2e/test_passenger_permissions.py): the app root and
    # tmp/ are only touched by the app's user and the Passenger core (root), so they stay
    # private; Apache (www-data) must search the site directory and the document root.
    for path, other in ((site.approot, 0), (site.tmp, 0), (site.docroot, 0o005)):
        os.mkdir(path, 0o700)
        created.append(path)
        os.chmod(path, private_mode(0o770, os.stat(path).st_gid, me, umask) | other)
    create_private_dir(site.default_logs)
    created.append(site.default_logs)
    return os.stat(site.approot).st_gid


def _make_files(site: Site, config_text: str, created: list[Path]) -> None:
    for path, text in ((site.passenger_wsgi, PASSENGER_WSGI), (site.config_toml, config_text),
                       (site.restart_txt, ""),
                       (site.maint_txt, "wsgi-shim: maintenance mode is on until this file is removed "
                                        f"({advice.command('maint off', site.site)}).\n")):
        create_private_file(path, text)
        created.append(path)


def _remove(created: list[Path]) -> None:
    for path in reversed(created):
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:
            pass


def _as_install_error(exc: BaseException, site: Site) -> BaseException:
    """What to raise once everything created was removed: KeyboardInterrupt and the like as they are."""
    if isinstance(exc, InstallError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, OSError):
        return InstallError(f"Could not create {exc.filename or site.site}: {exc.strerror}. Nothing was left behind.")
    return InstallError(f"Could not create the site: {exc}. Nothing was left behind.")


def _warnings(site: Site, me: str, gid: int, user: str, python: str) -> list[str]:
    warnings = []
    if not group_is_safe(gid, me):
        warnings.append(f"The files' group '{grp.getgrgid(gid).gr_name}' is your default group, shared with "
                        "other users, so it got no access. Use a project group: chgrp -R PROJECT "
                        f"{site.site} and set passenger_group.")
    if user != me:
        warnings.append(f"passenger_user is '{user}' but the files belong to you ({me}); Passenger runs the "
                        "app as passenger_user, which must be able to read them.")
    if not default_python() and python == str(site.default_venv / "bin" / "python"):
        warnings.append(f"Not run from a venv: passenger_python is set to {python}; create that venv "
                        "(inv venv) and install wsgi-shim into it.")
    return warnings


def apache_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def apache_snippet(site: Site, user: str, group: str, python: str) -> str:
    q = apache_quote
    return "\n".join([
        f"# Apache + Passenger settings for {site.site} (for the site's <VirtualHost>)",
        f"DocumentRoot {q(str(site.docroot))}",
        f"PassengerAppRoot {q(str(site.approot))}",
        "PassengerAppType wsgi",
        "PassengerStartupFile passenger_wsgi.py",
        f"PassengerPython {q(python)}",
        f"PassengerUser {user}",
        f"PassengerGroup {group}",
        f"PassengerRestartDir {q(str(site.tmp))}",
        f"<Directory {q(str(site.docroot))}>",
        "    Require all granted",
        "</Directory>",
    ])
