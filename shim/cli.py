"""The `wsgi-shim` command. Parsing and printing only; the work is in the modules it calls."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from shim import __version__
from shim.ops import checking, control
from shim.runtime import records
from shim.runtime.layout import DEFAULT_APPROOT, DEFAULT_DOCROOT, Site


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
    from shim.ops import logview

    logview.add_arguments(p)

    p = sub.add_parser("serve", help="preview the site locally, loaded as Passenger loads it")
    _site_arg(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)

    from shim.ops import deploy

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
    from shim.ops.install import InstallError, apache_snippet, install

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


def cmd_check(args) -> int:
    site = _site(args)
    problems, info = checking.collect_problems(site, not args.no_import)
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


def cmd_restart(args) -> int:
    site = _site(args)
    if not site.tmp.is_dir():
        print(f"wsgi-shim restart: {site.tmp} does not exist; is {site.site} a site?", file=sys.stderr)
        return 1
    starts = control.starts_path(site)
    before = time.time()
    try:
        control.touch_restart(site.restart_txt)
    except OSError as exc:
        print(f"wsgi-shim restart: cannot touch {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    if not args.wait:
        print("restart requested; Passenger restarts the app on its next request")
        return 0
    return control.wait_for_new_start(starts, before, args.wait, args.url)


def cmd_status(args) -> int:
    site = _site(args)
    logging_cfg = control.site_logging(site)
    starts = records.read_starts(logging_cfg.starts_path)
    last = starts[-1] if starts else None
    result: dict = {"site": str(site.site), "maintenance": site.maint_txt.exists(), "last_start": last}
    from shim.ops import deploy

    try:
        result["release"] = deploy.current_release(site)
    except deploy.DeployError:
        result["release"] = None
    try:
        restart_mtime = site.restart_txt.stat().st_mtime
    except OSError:
        restart_mtime = 0.0
    result["restart_pending"] = bool(last and restart_mtime > last.get("epoch", 0))
    from shim.ops import logview

    result["recent_errors"] = logview.recent_errors(logging_cfg.path, 5)
    if args.url:
        try:
            status, headers, _ = control.http_get(args.url)
            result["http"] = {"url": args.url, "status": status, "serving": control.classify_response(status, headers)}
        except OSError as exc:
            result["http"] = {"url": args.url, "error": str(getattr(exc, "reason", exc))}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"site:        {site.site}")
        print(f"maintenance: {'on' if result['maintenance'] else 'off'}")
        if result["release"]:
            print(f"release:     {result['release']} (wsgi-shim releases SITE lists them)")
        print("last start:  " + (control.describe_start(last) if last else "none recorded (no request since install?)"))
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
    from shim.ops import logview

    return logview.run(_site(args), args)


def cmd_serve(args) -> int:
    from shim.ops import preview

    return preview.serve(_site(args), args.host, args.port)


def cmd_demo(args) -> int:
    from shim.ops import preview

    return preview.demo(Path(args.dir).absolute() if args.dir else None, args.host, args.port)


def cmd_deploy(args) -> int:
    from shim.ops import deploy

    return deploy.run_deploy(_site(args), args)


def cmd_rollback(args) -> int:
    from shim.ops import deploy

    return deploy.run_rollback(_site(args), args)


def cmd_releases(args) -> int:
    from shim.ops import deploy

    return deploy.run_releases(_site(args), args)


COMMANDS = {"install": cmd_install, "check": cmd_check, "maint": cmd_maint, "restart": cmd_restart,
            "status": cmd_status, "logs": cmd_logs, "serve": cmd_serve, "demo": cmd_demo,
            "deploy": cmd_deploy, "rollback": cmd_rollback, "releases": cmd_releases}

if __name__ == "__main__":
    sys.exit(main())
