"""The `wsgi-shim` command. Parsing and printing only; the work is in the modules it calls."""

from __future__ import annotations

import argparse
import json
import os
import pwd
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from shim import __version__, control
from shim.layout import DEFAULT_APPROOT, DEFAULT_DOCROOT, Site
from shim.problems import Problem


def _site_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("site", metavar="SITE", help="the site directory (or its app root)")
    p.add_argument("-a", "--approot", default=DEFAULT_APPROOT,
                   help=f"app root directory name inside SITE (default {DEFAULT_APPROOT})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgi-shim",
        description="Set up, check, and control a Python site on Apache + Phusion Passenger.")
    parser.add_argument("--version", action="version", version=f"wsgi-shim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("install", help="create a new site's directories and files")
    p.add_argument("site", metavar="SITE", help="absolute path of the site directory")
    p.add_argument("-a", "--approot", default=DEFAULT_APPROOT, help=f"app root name (default {DEFAULT_APPROOT})")
    p.add_argument("-d", "--docroot", default=DEFAULT_DOCROOT, help=f"document root name (default {DEFAULT_DOCROOT})")
    p.add_argument("--user", help="passenger_user (default: you)")
    p.add_argument("--group", help="passenger_group (default: the group of the new app root)")
    p.add_argument("--python", help="passenger_python (default: this venv's python)")
    p.add_argument("--app", default="app.application", help="[wsgi] app (default app.application)")
    p.add_argument("--apache", action="store_true", help="also print a ready Apache snippet")

    p = sub.add_parser("check", help="find every problem that would stop the site from serving")
    _site_arg(p)
    p.add_argument("--json", action="store_true", help="print the problems as JSON")
    p.add_argument("--no-import", action="store_true", help="skip importing the app in a subprocess")

    p = sub.add_parser("maint", help="maintenance mode: on, off or status")
    p.add_argument("action", choices=["on", "off", "status"])
    _site_arg(p)
    p.add_argument("--no-restart", action="store_true", help="do not touch restart.txt")

    p = sub.add_parser("restart", help="make Passenger restart the site on its next request")
    _site_arg(p)
    p.add_argument("--wait", type=float, metavar="SECONDS", default=0,
                   help="wait up to SECONDS until a new process has started, then report its state")
    p.add_argument("--url", help="request this URL while waiting (Passenger restarts on a request)")

    p = sub.add_parser("status", help="what the site serves: its app, maintenance, or an error page")
    _site_arg(p)
    p.add_argument("--url", help="also ask the site over HTTP")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("logs", help="read the app log the site writes")
    _site_arg(p)
    from shim import logview

    logview.add_arguments(p)

    p = sub.add_parser("serve", help="preview the site locally, loaded as Passenger loads it")
    _site_arg(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)

    from shim import deploy

    p = sub.add_parser("deploy", help="deploy new code as a release, check it, switch to it, restart")
    _site_arg(p)
    deploy.add_deploy_arguments(p)
    p = sub.add_parser("rollback", help="switch back to the previous release (or --to RELEASE)")
    _site_arg(p)
    deploy.add_rollback_arguments(p)
    p = sub.add_parser("releases", help="list the site's releases, marking the current one")
    _site_arg(p)
    deploy.add_releases_arguments(p)

    p = sub.add_parser("demo", help="create a throwaway demo site and preview it")
    p.add_argument("dir", nargs="?", metavar="DIR", help="where to create it (default: a temporary dir)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _site(args) -> Site:
    path = Path(args.site)
    if not path.is_absolute():
        path = Path.cwd() / path
    return Site.locate(path, args.approot)


# ---- install -------------------------------------------------------------------------------


def cmd_install(args) -> int:
    from shim.install import InstallError, apache_snippet, install

    site = Site(Path(args.site), args.approot, args.docroot)
    try:
        result = install(site, args.user, args.group, args.python, args.app)
    except InstallError as exc:
        print(f"wsgi-shim install: {exc}", file=sys.stderr)
        return 1
    print(f"Created the site in {site.site}:")
    for path in result.created:
        print(f"  {path}{'/' if path.is_dir() else ''}  ({oct(path.stat().st_mode & 0o777)[2:]})")
    print("\nMaintenance mode is ON (tmp/maint.txt). When your app is in place:")
    print(f"  wsgi-shim check {site.site} && wsgi-shim maint off {site.site}\n")
    print("Values for the sysadmins (Apache + Passenger):")
    for key, value in (("DocumentRoot", site.docroot), ("PassengerAppRoot", site.approot),
                       ("PassengerAppType", "wsgi"), ("PassengerStartupFile", "passenger_wsgi.py"),
                       ("PassengerPython", result.python), ("PassengerUser", result.user),
                       ("PassengerGroup", result.group), ("PassengerRestartDir", site.tmp)):
        print(f"  {key:21} {value}")
    for warning in result.warnings:
        print(f"\nwarning: {warning}", file=sys.stderr)
    if args.apache:
        print("\n" + apache_snippet(site, result.user, result.group, result.python))
    return 0


# ---- check ---------------------------------------------------------------------------------


def collect_problems(site: Site, do_import: bool = True) -> tuple[list[Problem], dict]:
    """Every problem: config, files, accounts, then the app imported as Passenger would."""
    from shim import checks
    from shim.config import load_config

    me = pwd.getpwuid(os.getuid()).pw_name
    info: dict = {"maintenance": site.maint_txt.exists()}
    if not site.approot.is_dir():
        return [Problem("approot-missing", "The app root does not exist.", str(site.approot),
                        f"Create the site with `wsgi-shim install {site.site}`, or name the right "
                        "directory (-a/--approot).")], info
    cfg, problems = load_config(site.approot)
    user = cfg.passenger_user if cfg else None
    problems += checks.startup_file_problems(site, user)
    problems += checks.tree_problems(site, user)
    if cfg is not None:
        problems += checks.account_problems(cfg, me)
        problems += checks.python_problems(cfg)
        python_ok = not any(p.code.startswith("python-") or p.code == "venv-none" for p in problems)
        if do_import and python_ok and site.passenger_wsgi.is_file():
            problems += probe_problems(site, cfg.passenger_python, info)
        elif not do_import or not python_ok:
            problems += checks.runtime_problems(cfg, check_identity=False)
    if cfg is not None:
        problems += last_start_problems(site, cfg)
    unique: dict[tuple[str, str, str], Problem] = {}
    for p in problems:
        unique.setdefault((p.code, p.what, p.where), p)
    return list(unique.values()), info


# What only the real app process can see: who Passenger ran it as and in which venv.
START_ONLY_CODES = {"user-mismatch", "group-mismatch", "venv-mismatch", "venv-none"}


def last_start_problems(site: Site, cfg) -> list[Problem]:
    """Identity problems the last real start recorded, unless config.toml changed since."""
    starts = control.read_starts(cfg.logging.starts_path, limit=1)
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


def probe_problems(site: Site, python: str, info: dict) -> list[Problem]:
    """Load passenger_wsgi.py in a fresh process of the site's Python, as Passenger does."""
    from shim import checks

    probe = Path(__file__).with_name("probe.py")
    env = dict(os.environ, WSGI_SHIM_PROBE="1")
    env.pop("PYTHONPATH", None)
    try:
        out = subprocess.run([python, str(probe), str(site.approot)], cwd=site.approot, env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=300, text=True)
        result = json.loads(out.stdout or "{}")
    except subprocess.TimeoutExpired:
        return [Problem("app-import-timeout", "Importing the app took more than 300 seconds.",
                        str(site.passenger_wsgi), "Look for code that waits at import time (network, locks).")]
    except (OSError, ValueError) as exc:
        return [Problem("probe-failed", f"Could not run the site's Python to import the app: {exc}.",
                        python, "Check passenger_python and that the venv works: PYTHON -c 'import shim'.")]
    info["probe"] = result
    version = tuple(result.get("python_version") or ())
    early = checks.python_passenger_problems(version, checks.passenger_version(), python) if version else []
    return early + _probe_result_problems(site, python, result)


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


def cmd_check(args) -> int:
    site = _site(args)
    problems, info = collect_problems(site, not args.no_import)
    if args.json:
        print(json.dumps({"site": str(site.site), "approot": str(site.approot),
                          "ok": not any(p.blocking for p in problems),
                          "maintenance": info["maintenance"], "problems": [p.as_dict() for p in problems]},
                         indent=2))
        return 1 if any(p.blocking for p in problems) else 0
    errors = [p for p in problems if p.blocking]
    for p in problems:
        print(p.as_text() + "\n")
    state = "ON (visitors see the maintenance page)" if info["maintenance"] else "off"
    warned = len(problems) - len(errors)
    warnings = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
    if errors:
        print(f"{len(errors)} problem{'s' if len(errors) != 1 else ''}{warnings} found in {site.approot}. "
              f"Maintenance mode: {state}.")
        return 1
    print(f"OK: {site.approot} would serve its app{warnings}. Maintenance mode: {state}.")
    return 0


# ---- maint, restart ------------------------------------------------------------------------


def cmd_maint(args) -> int:
    site = _site(args)
    if not site.tmp.is_dir():
        print(f"wsgi-shim maint: {site.tmp} does not exist; is {site.site} a site? "
              "(wsgi-shim install creates it)", file=sys.stderr)
        return 1
    if args.action == "status":
        print("maintenance mode is " + ("on" if site.maint_txt.exists() else "off"))
        return 0
    try:
        changed = control.maint_on(site.maint_txt) if args.action == "on" else control.maint_off(site.maint_txt)
        if not args.no_restart:
            control.touch_restart(site.restart_txt)
    except OSError as exc:
        print(f"wsgi-shim maint: cannot change {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    word = "on" if args.action == "on" else "off"
    print(f"maintenance mode {'is now' if changed else 'was already'} {word}"
          + ("" if args.no_restart else "; the site restarts on its next request"))
    return 0


def _get(url: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": f"wsgi-shim/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def site_logging(site: Site):
    """The site's [logging] settings (log and start-record paths); defaults if config.toml is unreadable."""
    from shim.config import load_config
    from shim.loader import default_logging

    cfg, _ = load_config(site.approot)
    return cfg.logging if cfg else default_logging(site.approot)


def _starts_path(site: Site) -> Path:
    return site_logging(site).starts_path


def _describe_start(record: dict) -> str:
    lines = [f"{record.get('time')} pid {record.get('pid')}: serving "
             + {"app": "the app", "maintenance": "the maintenance page",
                "error": "the error page"}.get(record.get("state"), str(record.get("state")))]
    for p in record.get("problems", []):
        lines.append(Problem.from_dict(p).as_text())
    return "\n".join(lines)


def cmd_restart(args) -> int:
    site = _site(args)
    if not site.tmp.is_dir():
        print(f"wsgi-shim restart: {site.tmp} does not exist; is {site.site} a site?", file=sys.stderr)
        return 1
    starts = _starts_path(site)
    before = time.time()
    try:
        control.touch_restart(site.restart_txt)
    except OSError as exc:
        print(f"wsgi-shim restart: cannot touch {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    if not args.wait:
        print("restart requested; Passenger restarts the app on its next request")
        return 0
    return wait_for_new_start(starts, before, args.wait, args.url)


def wait_for_new_start(starts: Path, before: float, wait: float, url: str | None,
                       prog: str = "wsgi-shim restart") -> int:
    """Wait until a process start newer than BEFORE is recorded (requesting URL meanwhile, as
    Passenger restarts on a request) and report it; 0 when it serves the app or maintenance."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if url:
            try:
                _get(url, timeout=max(1.0, deadline - time.monotonic()))
            except OSError:
                pass
        new = [r for r in control.read_starts(starts) if r.get("epoch", 0) > before]
        if new:
            record = new[-1]
            print("restarted: " + _describe_start(record))
            return 0 if record.get("state") in ("app", "maintenance") else 1
        time.sleep(0.5)
    hint = "" if url else " No request reached the site: pass --url so wsgi-shim can make one."
    print(f"{prog}: no new process started within {wait:g} s.{hint}", file=sys.stderr)
    if url:
        try:
            status, headers, _ = _get(url)
            print(f"{url} answers {status}, serving {classify_response(status, headers)}", file=sys.stderr)
        except OSError as exc:
            print(f"{url} is unreachable: {getattr(exc, 'reason', exc)}", file=sys.stderr)
    old = control.read_starts(starts, limit=1)
    if old:
        print("last start (before this restart): " + _describe_start(old[-1]), file=sys.stderr)
    return 1


# ---- status --------------------------------------------------------------------------------


def classify_response(status: int, headers: dict[str, str]) -> str:
    kind = {k.lower(): v for k, v in headers.items()}.get("x-wsgi-shim", "")
    if kind in ("maintenance", "error", "app-error"):
        return kind
    if status >= 500:
        return "server-error"  # e.g. Passenger's own "We're sorry" page
    return "app"


def cmd_status(args) -> int:
    site = _site(args)
    logging_cfg = site_logging(site)
    starts = control.read_starts(logging_cfg.starts_path)
    last = starts[-1] if starts else None
    result: dict = {"site": str(site.site), "maintenance": site.maint_txt.exists(), "last_start": last}
    from shim import deploy

    try:
        result["release"] = deploy.current_release(site)
    except deploy.DeployError:
        result["release"] = None
    try:
        restart_mtime = site.restart_txt.stat().st_mtime
    except OSError:
        restart_mtime = 0.0
    result["restart_pending"] = bool(last and restart_mtime > last.get("epoch", 0))
    from shim import logview

    result["recent_errors"] = logview.recent_errors(logging_cfg.path, 5)
    if args.url:
        try:
            status, headers, _ = _get(args.url)
            result["http"] = {"url": args.url, "status": status, "serving": classify_response(status, headers)}
        except OSError as exc:
            result["http"] = {"url": args.url, "error": str(getattr(exc, "reason", exc))}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"site:        {site.site}")
        print(f"maintenance: {'on' if result['maintenance'] else 'off'}")
        if result["release"]:
            print(f"release:     {result['release']} (wsgi-shim releases SITE lists them)")
        print("last start:  " + (_describe_start(last) if last else "none recorded (no request since install?)"))
        if result["restart_pending"]:
            print("restart:     pending (restart.txt is newer than the last start)")
        for entry in result["recent_errors"]:
            print(f"error:       {entry.get('time', '')} id {entry.get('id', '?')}: {entry.get('summary', '')}")
        http = result.get("http")
        if http:
            print(f"http:        {http['url']} -> " + (f"{http['status']}, serving {http['serving']}"
                                                       if "status" in http else f"unreachable: {http['error']}"))
    serving = (result.get("http") or {}).get("serving") or (last or {}).get("state")
    return 0 if serving in ("app", "maintenance") else 1


# ---- logs, serve, demo ---------------------------------------------------------------------


def cmd_logs(args) -> int:
    from shim import logview

    return logview.run(_site(args), args)


def cmd_serve(args) -> int:
    from shim import preview

    return preview.serve(_site(args), args.host, args.port)


def cmd_demo(args) -> int:
    from shim import preview

    return preview.demo(Path(args.dir).absolute() if args.dir else None, args.host, args.port)


def cmd_deploy(args) -> int:
    from shim import deploy

    return deploy.run_deploy(_site(args), args)


def cmd_rollback(args) -> int:
    from shim import deploy

    return deploy.run_rollback(_site(args), args)


def cmd_releases(args) -> int:
    from shim import deploy

    return deploy.run_releases(_site(args), args)


COMMANDS = {"install": cmd_install, "check": cmd_check, "maint": cmd_maint, "restart": cmd_restart,
            "status": cmd_status, "logs": cmd_logs, "serve": cmd_serve, "demo": cmd_demo,
            "deploy": cmd_deploy, "rollback": cmd_rollback, "releases": cmd_releases}

if __name__ == "__main__":
    sys.exit(main())
