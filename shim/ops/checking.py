"""`wsgi-shim check`: every problem, from config.toml to the app imported as Passenger would.

The runtime checks (shim.runtime.checks) run inside the app process at start-up; the ones here
need the developer's shell: accounts and group membership, the startup file, the directory tree,
Passenger's version, and the import itself in a fresh process of the site's own Python
(shim/ops/probe.py).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import tempfile
from pathlib import Path

from shim.ops import versions
from shim.runtime import checks, records, sitepaths
from shim.runtime.config import Config
from shim.runtime.layout import Site
from shim.runtime.permissions import (
    is_group_member,
    readable_by_others,
    unsearchable_ancestor,
    writable_by_others,
    writable_on_the_way,
)
from shim.runtime.problems import Problem
from shim.runtime.sitepaths import approot_writable


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _member(user: str, group: str) -> bool:
    try:
        return is_group_member(pwd.getpwnam(user).pw_uid, group)
    except KeyError:
        return False


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
        from shim.runtime.files import kind_of

        return [Problem("wsgi-file-missing", f"passenger_wsgi.py is {kind_of(st.st_mode)}, not a regular file.",
                        str(path),
                        "Replace it with a file containing: import shim; application = shim.get_app()")]
    problems = []
    why = readable_by_others(st, cfg_user)
    if why:
        problems.append(Problem("wsgi-file-exposed", f"passenger_wsgi.py is {why}.", str(path),
                                f"chmod 600 {path} (640 with a project group)."))
    from shim.runtime.files import read_regular, why_not

    try:  # never blocks on a FIFO swapped in after the stat above, never reads without limit
        source = read_regular(path, 1024 * 1024)
        compile(source, str(path), "exec")
    except OSError as exc:
        problems.append(Problem("wsgi-file-unreadable", f"passenger_wsgi.py {why_not(exc)}.",
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
    bad = writable_on_the_way(approot, cfg_user)
    if bad:  # also found by the start (shim.runtime.sitepaths): the same words, shown once
        problems.append(approot_writable(bad))
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

    # As build-python looks: a non-login shell's PATH may lack the sbin and local directories.
    tool = next(filter(None, (shutil.which(name) for name in (
        "passenger-config", "/usr/sbin/passenger-config", "/usr/local/bin/passenger-config"))), None)
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    import re

    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


IMP_FIX = ("Install wsgi-shim's imp compatibility module: `inv venv` for this venv (`fab -H HOST venv` on the "
           "access host) adds it to an existing venv and changes nothing else; a Python built with `inv "
           "build-python` gets it in its standard library on its next run. Or ask the sysadmins for Passenger "
           "{fixed} or newer. See docs/building-python.md.")


def python_passenger_problems(python: tuple[int, ...], passenger: tuple[int, ...] | None,
                              where: str, imp: dict | None = None) -> list[Problem]:
    """Passenger before 6.0.19 loads WSGI apps with `imp.load_source`, and Python 3.12 removed
    `imp`: without wsgi-shim's compatibility module (IMP: the probe's report on `import imp` in
    the site's Python) such an app dies in Passenger's loader, before wsgi-shim runs, with the
    generic page. The thresholds live in shim/ops/versions.py, shared with build-python."""
    if not versions.needs_imp_free_passenger(python) or (imp or {}).get("usable"):
        return []
    if passenger is not None and tuple(passenger) >= versions.PASSENGER_IMP_FIXED:
        return []
    version = ".".join(map(str, python[:3]))
    fixed = versions.dotted(versions.PASSENGER_IMP_FIXED)
    imp = imp or {}
    error = imp.get("error", "")
    fix = IMP_FIX.format(fixed=fixed)
    if not imp or error.startswith("ModuleNotFoundError: No module named 'imp'"):
        state = "has no `imp` module"
    elif error:
        state = f"cannot import its `imp` module ({error})"
    else:
        state = f"has an `imp` module without load_source ({imp.get('file')})"
        fix = f"Move {imp.get('file')} away (it is not wsgi-shim's, which is never overwritten), then: " + fix
    if passenger is None:
        return [Problem("imp-missing-passenger-unknown",
                        f"The site's Python is {version} and {state}. Passenger's loader before {fixed} imports "
                        "it, and Passenger's version cannot be seen from here: on such a Passenger the site would "
                        "not start.", where, fix, severity="warning")]
    return [Problem("imp-missing",
                    f"The site's Python is {version} and {state}, but Passenger {'.'.join(map(str, passenger))} "
                    f"loads apps with `imp.load_source` (as Passenger before {fixed} does): every start dies in "
                    "Passenger's loader, and visitors get Passenger's generic error page.", where, fix)]


def collect_problems(site: Site, do_import: bool = True, probe_root: Path | None = None,
                     probe_python: str | None = None, requests: bool = True,
                     host: str | None = None) -> tuple[list[Problem], dict]:
    """Every problem: config, files, accounts, then the app imported as Passenger would and (with
    REQUESTS) sent the [check] requests. HOST: the site's own host name (default [check] host),
    the requests' Host header and checked against a Django project's ALLOWED_HOSTS."""
    from shim.runtime.config import load_config

    me = pwd.getpwuid(os.getuid()).pw_name
    maintenance, tmp_problems = checks.maintenance_state(site.maint_txt)
    info: dict = {"maintenance": maintenance}
    if not site.approot.is_dir():
        return [Problem("approot-missing", "The app root does not exist.", str(site.approot),
                        f"Create the site with `wsgi-shim install {site.site}`, or name the right "
                        "directory (-a/--approot).")], info
    cfg, problems = load_config(site.approot)
    user = cfg.passenger_user if cfg else None
    problems += startup_file_problems(site, user)
    problems += tree_problems(site, user) + tmp_problems
    if cfg is not None:
        problems += account_problems(cfg, me)
        # Also here, on the path as given: the app process only sees its resolved cwd.
        problems += checks.ownership_problems(cfg)
        problems += sitepaths.writable_problems(cfg)
        problems += sitepaths.record_file_problems(cfg)
        problems += python_problems(cfg)
        problems += debug_token_problems(cfg)
        problems += environment_secret_problems(cfg)
        problems += log_file_problems(cfg)
        problems += shared_problems(site, cfg, probe_root)
        if cfg.jobs or cfg.alerts:
            from shim.ops.jobs.checks import job_problems

            problems += job_problems(cfg)
        from shim.ops.stalecode import approot_code_problems

        problems += approot_code_problems(site, cfg)
        python_ok = not any(p.code.startswith("python-") or p.code == "venv-none" for p in problems)
        if do_import and python_ok and site.passenger_wsgi.is_file():
            host = host or cfg.check_host or None
            spec = request_spec(cfg, host) if requests else None
            problems += probe_problems(site, probe_python or cfg.passenger_python, info, probe_root, spec, host)
        elif not do_import or not python_ok:
            # Without the probe the runtime checks run in this process: whose venv it is says
            # nothing about the site's (a start records that: last_start_problems).
            problems += [p for p in checks.runtime_problems(cfg, check_identity=False)
                         if p.code not in START_ONLY_CODES]
    if cfg is not None:
        problems += last_start_problems(site, cfg)
        if probe_root is None:  # a deploy's check of a new release: its files are new by nature
            from shim.ops.freshness import restart_due_problem

            problems += restart_due_problem(site, cfg)
        # Masked again here: the probe may have run an older wsgi-shim from the site's venv.
        from shim.runtime.loader import site_redactor

        problems = site_redactor(cfg).problems(problems)
    unique: dict[tuple[str, str, str], Problem] = {}
    for p in problems:
        unique.setdefault((p.code, p.what, p.where), p)
    return list(unique.values()), info


def shared_problems(site: Site, cfg: Config, root: Path | None = None) -> list[Problem]:
    """For a site served from releases: data in the current release (or, in a deploy's check, the
    new one: ROOT is its shadow app root) that the next deploy would lose, and shared paths the
    release hides or lacks (shim/ops/deploy/shared.py)."""
    from shim.ops.deploy import shared, store

    link = (root or site.approot) / store.CURRENT
    if cfg.chdir.strip("/").split("/")[0] != store.CURRENT or not link.is_symlink():
        return []
    release = store.release_path(site, os.path.basename(os.readlink(link).rstrip("/")))
    if not release.is_dir():
        return []
    return shared.release_problems(site, release, cfg.deploy_shared, cfg.chdir)


def log_file_problems(cfg: Config) -> list[Problem]:
    """The app log or the start records replaced by a FIFO, a device or a directory: the app
    process skips it without a word on any page (opening it could block every start)."""
    import stat

    from shim.runtime.files import kind_of

    problems = []
    for path, lost in ((cfg.logging.path, "the app's output, warnings and request errors go to the "
                                          "server's log instead, which you cannot read"),
                       (cfg.logging.starts_path, "no process start is recorded, so status cannot tell "
                                                 "how the site last started")):
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue  # not there yet: the first start creates it
        if not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
            problems.append(Problem("log-not-file", f"{path} is {kind_of(mode)}, not a regular file: the "
                                                    f"shim never opens it, and {lost}.", str(path),
                                    f"Remove it (rm {path}); the next start creates it again.",
                                    severity="warning"))
    return problems


def environment_secret_problems(cfg: Config) -> list[Problem]:
    """[environment] values that look like secrets (a secret-looking name, a URL with a password):
    config.toml is read by everyone who may read the app root, is copied into backups and diffs,
    and a secret there is masked only by the name and shape rules (docs/security.md)."""
    from shim.runtime.redact import secret_looking_environment

    return [Problem("env-secret", f"[environment] {key} looks like a secret (by its name, or a password in "
                                  "a URL), kept in config.toml.", f"{cfg.file}, [environment] {key}",
                    f"Move it to a file of its own (mode 600) and name that file in [secret_files] "
                    f"instead: your app then reads the file whose path {key} holds, and its whole "
                    "contents are masked in every log and page.", severity="warning")
            for key in secret_looking_environment(cfg.environment)]


def debug_token_problems(cfg: Config) -> list[Problem]:
    """A debug token file that cannot be used (a FIFO, missing, readable by others, too short):
    the app process only says so in the app log, and the owner sees no traceback by token."""
    from shim.runtime.optin import read_token

    path = cfg.logging.debug_token_file
    if not path or not os.path.isabs(path):  # unset, or a relative path (config-bad-value)
        return []
    _, why = read_token(path)
    if not why:
        return []
    return [Problem("debug-token-unusable", f"[logging] debug_token_file {path} {why}; no request sees "
                                            "tracebacks by token.", f"{cfg.file}, [logging] debug_token_file",
                    "Make it a regular file of the site's user, mode 600, holding a token of 16 or more "
                    "characters: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE",
                    severity="warning")]


# What only the real app process can see: who Passenger ran it as and in which venv.
START_ONLY_CODES = {"user-mismatch", "group-mismatch", "venv-mismatch", "venv-none"}


def last_start_problems(site: Site, cfg) -> list[Problem]:
    """Identity problems the last real start recorded, unless config.toml changed since."""
    # The preview's starts (wsgi-shim serve) are not Passenger's: who ran them says nothing.
    starts = [r for r in records.read_starts(cfg.logging.starts_path) if not r.get("preview")]
    if not starts:
        return []
    last = starts[-1]
    try:
        if site.config_toml.stat().st_mtime > last.get("epoch", 0):
            return []
    except OSError:
        return []
    seen = f" (seen when the site last started, {last.get('time')})"
    return [Problem.from_dict({**p, "where": p.get("where", "") + seen})
            for p in last.get("problems", []) if p.get("code") in START_ONLY_CODES]


def _request_budget(spec: dict | None) -> float:
    return len(spec["requests"]) * float(spec["timeout"]) + 5 if spec else 0


def request_spec(cfg: Config, host: str | None = None) -> dict | None:
    """What the probe sends the app after importing it ([check]); None: no requests. HOST (from
    --url, else [check] host) is the Host header; "localhost" when neither names one."""
    if not cfg.check_requests:
        return None
    return {"requests": [list(r) for r in cfg.check_requests], "host": host or "localhost",
            "host_set": bool(host), "timeout": cfg.check_timeout}


def probe_problems(site: Site, python: str, info: dict, root: Path | None = None,
                   spec: dict | None = None, host: str | None = None) -> list[Problem]:
    """Load passenger_wsgi.py in a fresh process of the site's Python, as Passenger does
    (from ROOT instead of the app root: deploy's shadow root of a release not yet current).

    The probe reports through a file descriptor of its own (an unnamed temporary file), so that
    whatever the app prints at import cannot garble the report."""
    probe = Path(__file__).with_name("probe.py")
    env = dict(os.environ, WSGI_SHIM_PROBE="1")
    env.pop("PYTHONPATH", None)
    env.pop("WSGI_SHIM_PROBE_REQUESTS", None)
    if spec:
        env["WSGI_SHIM_PROBE_REQUESTS"] = json.dumps(spec)
    env.pop("WSGI_SHIM_PROBE_HOST", None)
    if host:
        env["WSGI_SHIM_PROBE_HOST"] = host
    # Its stderr goes to a file, not a pipe: a pipe would make us wait for EOF, i.e. until every
    # process the app starts at import (a worker, a scheduler) has exited, long after the probe.
    with tempfile.TemporaryFile() as report, tempfile.TemporaryFile() as errors:
        fd = report.fileno()
        try:
            out = subprocess.run([python, str(probe), str(root or site.approot), str(fd)], cwd=root or site.approot,
                                 env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                 timeout=300 + _request_budget(spec), pass_fds=(fd,))
        except subprocess.TimeoutExpired:
            return [Problem("app-import-timeout", "Importing the app took more than 300 seconds.",
                            str(site.passenger_wsgi), "Look for code that waits at import time (network, locks).")]
        except OSError as exc:
            return [Problem("probe-failed", f"Could not run the site's Python to import the app: {exc.strerror}.",
                            python, "Check passenger_python and that the venv works: PYTHON -c 'import shim'.")]
        report.seek(0)
        raw = report.read()
        errors.seek(max(0, errors.seek(0, os.SEEK_END) - 8192))
        said = errors.read().decode("utf-8", "replace").strip()
    try:
        result = json.loads(raw)
    except ValueError:
        return [Problem("probe-failed", f"The site's Python exited (code {out.returncode}) without reporting "
                                        "on the import of the app.", python,
                        "Check that the venv works: PYTHON -c 'import shim'; an app that calls os._exit() "
                        "at import time ends the process before anything can be reported.", said[-2000:])]
    info["probe"] = result
    version = tuple(result.get("python_version") or ())
    # Only Python 3.12+ without imp needs Passenger's version: passenger-config starts Ruby (~80 ms).
    early = (python_passenger_problems(version, passenger_version(), python, result.get("imp"))
             if version and versions.needs_imp_free_passenger(version) and not result.get("imp", {}).get("usable")
             else [])
    from shim.ops.djangochecks import django_problems
    from shim.ops.firstrequest import request_problems

    return (early + _probe_result_problems(site, python, result) + request_problems(site, result, spec)
            + django_problems(site, result.get("django")))


def _probe_result_problems(site: Site, python: str, result: dict) -> list[Problem]:
    if "loader_error" in result or not result.get("shim_imported", True):
        if result.get("missing_module") == "shim" or not result.get("shim_imported", True):
            return [Problem("shim-not-installed", "wsgi-shim is not installed in the venv passenger_python names, "
                                                  "so passenger_wsgi.py fails at `import shim`.", python,
                            f"`inv install`, or {Path(python).parent}/pip install /path/to/wsgi-shim (a checkout or "
                            "wheel of wsgi-shim 0.2+; PyPI's 0.1.0 is the older package).")]
        return [Problem("wsgi-file-error", f"Loading passenger_wsgi.py raised {result['exception']}; Passenger "
                                           "would show only its generic error page.", str(site.passenger_wsgi),
                        "Restore the generated file: import shim; application = shim.get_app()",
                        result["loader_error"])]
    if "problems" not in result:
        if not result.get("callable"):
            return [Problem("wsgi-file-no-app", "passenger_wsgi.py defines no callable `application`.",
                            str(site.passenger_wsgi), "It must end with: application = shim.get_app()")]
        return []
    return [Problem.from_dict(p) for p in result["problems"]]


