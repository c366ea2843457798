"""The `wsgi-shim` command. Parsing and printing only; the work is in the modules it calls."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from shim import __version__
from shim.ops import checking, control, firstrequest
from shim.ops.locate import NotASite, locate
from shim.runtime import advice
from shim.runtime.layout import DEFAULT_APPROOT, DEFAULT_DOCROOT, Site
from shim.runtime.redact import escape_controls


def _site_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("site", metavar="SITE", help="the site directory (or its app root)")
    p.add_argument("-a", "--approot", default=DEFAULT_APPROOT,
                   help=f"app root directory name inside SITE (default {DEFAULT_APPROOT})")


def _logs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new entries as they are written (Ctrl-C to stop)")
    p.add_argument("--errors", action="store_true",
                   help="only errors: request exceptions, failed starts, ERROR log records")
    p.add_argument("--since", metavar="SPEC",
                   help="only entries newer than SPEC: 30s, 10m, 2h, 1d, 1w, or an ISO time "
                        "(2026-11-24T09:30, local time unless it names a zone)")
    p.add_argument("-n", "--lines", type=_count, metavar="N",
                   help="show the last N entries (default 50; with --since: all of them)")
    p.add_argument("--id", metavar="ERROR_ID", dest="error_id",
                   help="show the entry of this error id (printed on the 500 page), or of a unique "
                        "prefix of 6 or more of its characters")


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative" if minimum == 0
                                         else f"must be at least {minimum}, not {value}")
    return value


def _count(text: str) -> int:
    # "All of them": a bigger count overflows the reader's buffer.
    return min(_whole_number(text, 0), 10**9)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0 to 65535)")
    return value


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
    p.add_argument("--no-request", action="store_true",
                   help="import the app but send it none of the [check] requests (GET / by default)")
    p.add_argument("--url", metavar="URL", help="the site's public URL: a Django project's ALLOWED_HOSTS must "
                                                "hold its host")

    p = sub.add_parser("maint", help="maintenance mode: on, off or status")
    p.add_argument("action", choices=["on", "off", "status"])
    _site_arg(p)
    p.add_argument("--no-restart", action="store_true", help="do not touch restart.txt")

    p = sub.add_parser("restart", help="make Passenger restart the site on its next request")
    _site_arg(p)
    p.add_argument("--wait", type=_seconds, metavar="SECONDS", default=0,
                   help="wait up to SECONDS until a new process has started, then report its state")
    p.add_argument("--url", help="request this URL while waiting (Passenger restarts on a request)")

    p = sub.add_parser("status", help="what the site serves: its app, maintenance, or an error page")
    _site_arg(p)
    p.add_argument("--url", help="also ask the site over HTTP")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("logs", help="read the app log the site writes")
    _site_arg(p)
    _logs_arguments(p)

    p = sub.add_parser("serve", help="preview the site locally, loaded as Passenger loads it")
    _site_arg(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)

    _deploy_parsers(sub)
    _jobs_parsers(sub)

    p = sub.add_parser("tasks", help="write tasks.py, fabfile.py, invoke.yaml and fabric.yaml for SITE, so that "
                                     "`inv` and `fab -H HOST` run the wsgi-shim tasks")
    p.add_argument("site", metavar="SITE",
                   help="the site directory (on the host, for fab -H: quote ~/mysite to keep it the host's)")
    p.add_argument("--dir", default=".", help="where to write them (default: the current directory, your project's)")
    p.add_argument("--url", help="the site's public URL (shim.url: restart --wait and status request it)")
    p.add_argument("--venv", help="the site's venv, when it is not SITE/venv (shim.venv)")

    p = sub.add_parser("debug-url", help="an address that lets your browser see the detailed error pages")
    _site_arg(p)
    p.add_argument("--url", help="the site's address (default: a placeholder to replace)")

    p = sub.add_parser("demo", help="create a throwaway demo site and preview it")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="where to create it (default: a temporary directory, removed when the demo stops)")
    p.add_argument("--keep", action="store_true", help="keep the temporary demo site when the demo stops")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `run SITE -- CMD ...`: everything after the first -- is the command, untouched (argparse
    # would drop a later -- and read the command's own options as run's)
    command = argv[argv.index("--") + 1:] if argv[:1] == ["run"] and "--" in argv else None
    args = build_parser().parse_args(argv if command is None else argv[:argv.index("--")])
    if command is not None:
        args.argv = command
    try:
        return COMMANDS[args.command](args)
    except (NotASite, control.NoRestartDir) as exc:
        return _fail(args, str(exc))
    except control.BadURL as exc:
        return _fail(args, str(exc), 2)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except RecursionError:  # e.g. thousands of nested brackets in a file a command reads
        return _fail(args, "a file is nested too deeply to read (thousands of [ or {?); check config.toml "
                           "with a TOML validator.")
    except Exception as exc:  # noqa: BLE001 - the last line: one clear line, not a traceback
        if os.environ.get("WSGI_SHIM_TRACEBACK") == "1":
            raise
        return _fail(args, f"internal error: {exc.__class__.__name__}: {_printable(str(exc))}. Please report "
                           "it; WSGI_SHIM_TRACEBACK=1 shows the traceback.")


def _printable(text: str) -> str:
    """Control characters (a path may hold an escape sequence) shown escaped, never sent raw."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def _fail(args, message: str, code: int = 1) -> int:
    """One line on stderr, named after the subcommand; CODE 1 (or 2 for usage)."""
    print(f"wsgi-shim {args.command}: {_printable(message)}", file=sys.stderr)
    return code


def _site(args) -> Site:
    """The site SITE names; raises NotASite (one line, exit 1) when it names none."""
    return locate(args.site, args.approot)


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
    print(f"  {advice.command('check', args.site)} && {advice.command('maint off', args.site)}\n")
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


NOT_REQUESTED = "the app's answers to the [check] requests were not checked (--no-request)"
NOT_IMPORTED = ("the import of the app (passenger_wsgi.py, [wsgi] app and everything it imports) "
                "was not checked (--no-import)")


def cmd_check(args) -> int:
    site = _site(args)
    host = None
    if args.url:
        try:
            control.check_url(args.url)
        except control.BadURL as exc:
            return _fail(args, str(exc), 2)
        from urllib.parse import urlsplit

        host = urlsplit(args.url).hostname
    problems, info = checking.collect_problems(site, not args.no_import, requests=not args.no_request,
                                                host=host)
    errors = [p for p in problems if p.blocking]
    not_checked = [NOT_IMPORTED] if args.no_import else [NOT_REQUESTED] if args.no_request else []
    answers = firstrequest.summary(info.get("probe", {}))
    if args.json:
        print(json.dumps({"site": str(site.site), "approot": str(site.approot), "ok": not errors,
                          "imported": not args.no_import, "not_checked": not_checked, "requests": answers,
                          "maintenance": info["maintenance"], "problems": [p.as_dict() for p in problems]},
                         indent=2))
        return 1 if errors else 0
    for p in problems:
        print(p.as_text() + "\n")
    for line in answers:
        print(f"request: {escape_controls(line)}")
    state = "ON (visitors see the maintenance page)" if info["maintenance"] else "off"
    warned = len(problems) - len(errors)
    warnings = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
    if errors:
        print(f"{len(errors)} problem{'s' if len(errors) != 1 else ''}{warnings} found in {site.approot}. "
              f"Maintenance mode: {state}.")
        if args.no_import:  # fixing these is not the end: the import may fail next
            print("The app was not imported (--no-import): a missing module or an error at import "
                  "time would not show.")
    elif args.no_import:
        print(f"No problem found in {site.approot}{warnings}, but the app was not imported (--no-import): "
              "a missing module or an error at import time would not show. Maintenance mode: "
              f"{state}.")
    elif args.no_request:
        print(f"OK: {site.approot} imports its app{warnings}; no request was sent (--no-request), so a "
              f"failure at the first request would not show. Maintenance mode: {state}.")
    else:
        print(f"OK: {site.approot} would serve its app{warnings}. Maintenance mode: {state}.")
    return 1 if errors else 0


# ---- maint, restart ------------------------------------------------------------------------


def cmd_maint(args) -> int:
    site = _site(args)
    if args.action == "status":
        print("maintenance mode is " + ("on" if site.maint_txt.exists() else "off"))
        return 0
    try:
        changed = control.set_maintenance(site, args.action == "on", restart=not args.no_restart)
    except OSError as exc:
        return _fail(args, f"cannot change {exc.filename}: {exc.strerror}")
    print(f"maintenance mode {'is now' if changed else 'was already'} {args.action}"
          + ("" if args.no_restart else "; the site restarts on its next request"))
    return 0


def cmd_restart(args) -> int:
    try:
        restarted = control.restart(_site(args), args.wait, args.url)
    except OSError as exc:
        return _fail(args, f"cannot touch {exc.filename}: {exc.strerror}")
    if restarted is None:
        print("restart requested; Passenger restarts the app on its next request")
        return 0
    if restarted.start is None:
        return _fail(args, restarted.report())
    print(restarted.report())
    return 0 if restarted.ok else 1


def cmd_status(args) -> int:
    from shim.ops.status import site_status

    status = site_status(_site(args), args.url, lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 0 if status.ok else 1
    last = status.last_start
    print(f"site:        {status.site}")
    print(f"maintenance: {'on' if status.maintenance else 'off'}")
    if status.release:
        commit = f", commit {status.commit}" if status.commit else ""
        print(f"release:     {status.release}{commit} ({advice.command('releases', args.site)} lists them)")
    print("last start:  " + (control.describe_start(last) if last else "none recorded (no request since install?)"))
    if status.restart_pending:
        print("restart:     pending (restart.txt is newer than the last start)")
    if status.importing:
        print("starting:    " + control.describe_importing(status.importing, _site(args)))
    if status.restart_due:
        print(f"restart:     due: {', '.join(status.restart_due)} changed after the last start; the "
              f"running process still has the old code (wsgi-shim restart {status.site})")
    for e in status.errors:
        label = "error:      " if e.current else "earlier:    "
        note = "" if e.current else "  (before the last restart or a good start since: maybe fixed)"
        print(f"{label} {e.time} {e.kind} {e.id or '-'}: {e.summary}{note}")
    if status.errors:
        print(f"             ({advice.command('logs', args.site, '--id', 'ID')} shows an error in full)")
    for job in status.jobs:
        print(f"job:         {job['name']} ({job['schedule']}): {_last_run(job['last'])}")
    if status.http:
        print(f"http:        {status.http.describe()}")
    if status.http_failure:
        print(f"failing:     {status.http_failure}")
    return 0 if status.ok else 1


def _last_run(last: dict | None) -> str:
    if last is None:
        return "never run (wsgi-shim cron SITE installs the jobs)"
    how = "timed out" if last.get("timed_out") else f"exit {last.get('exit')}"
    return f"last run {last.get('time')}, {how}, {float(last.get('duration', 0)):.1f}s"


# ---- logs, serve, demo ---------------------------------------------------------------------


def cmd_logs(args) -> int:
    """0 when the log was read, 1 when it could not be or an --id was not found, 2 for a bad --since."""
    from shim.ops import logview

    site = _site(args)
    path = control.site_logging(site).path
    try:
        since = logview.parse_since(args.since) if args.since else None
    except ValueError as exc:
        return _fail(args, str(exc), 2)
    if args.error_id:
        args.error_id = _resolve_id(site, path, args.error_id)
        if args.error_id is None:
            return 1
    if args.error_id and not logview.log_files(path) and _start_error(site, args.error_id):
        return 0  # the app log is off, but the start record has it
    if not logview.log_files(path):
        print(f"No app log yet at {path}. It is created when the site's app process first starts "
              "with [logging] enabled; make a request to the site, or check that [logging] enabled "
              "is true in config.toml.", file=sys.stderr)
        if not args.follow:
            return 1 if args.error_id else 0
    try:
        if args.error_id:
            return _log_entry(path, args.error_id, site)
        limit = args.lines if args.lines is not None else (None if since is not None else logview.DEFAULT_LINES)
        selected = logview.select(path, args.errors, since, limit)
    except PermissionError as exc:
        return _fail(args, f"cannot read the app log: {exc}. It belongs to the site's user (passenger_user in "
                           f"config.toml): run `{advice.command('logs', args.site)}` as that user.")
    except OSError as exc:
        return _fail(args, f"cannot read the app log {path}: {exc}")
    for entry in selected:
        sys.stdout.write(logview.entry_text(entry) + "\n")
    sys.stdout.flush()
    if not selected and not args.follow:
        what = "error entries" if args.errors else "entries"
        print(f"No {what}" + (f" since {args.since}" if since is not None else "") + f" in {path}.",
              file=sys.stderr)
    if args.follow:
        logview.follow(path, args.errors, sys.stdout)
    return 0


def _log_entry(path: Path, error_id: str, site: Site) -> int:
    from shim.ops import logview

    entry = logview.find_error(path, error_id)
    if entry is None and _start_error(site, error_id):
        return 0
    if entry is None:
        print(f"No entry with error id {error_id} in {path} or its rotated files. It may have been rotated "
              "away (raise [logging] backups or max_bytes to keep more), or the id belongs to another site.",
              file=sys.stderr)
        return 1
    sys.stdout.write(entry["text"] + "\n")
    return 0


def _resolve_id(site: Site, path: Path, given: str) -> str | None:
    """The full error id GIVEN names (itself, or a unique prefix of 6+ characters); None, with the
    reason printed, when it is too short or names several."""
    from shim.ops import logview
    from shim.runtime import records

    found = logview.lookup_id(path, records.read_starts(control.starts_path(site), limit=1000), given)
    if found.resolved or not found.matches and not found.too_short:
        return found.resolved or given  # not found at all: said below, where the log is read
    if found.too_short:
        print(f"wsgi-shim logs: --id {given!r} is too short: give the error id from the page "
              f"(10 characters) or at least its first {logview.MIN_ID_PREFIX}.", file=sys.stderr)
        return None
    print(f"wsgi-shim logs: --id {given!r} matches {len(found.matches)} error ids: "
          f"{', '.join(found.matches[:20])}. Give more of it.", file=sys.stderr)
    return None


def _start_error(site: Site, error_id: str) -> bool:
    """Print the start record carrying a start-up error's id (from the page), if one does."""
    from shim.runtime import records

    wanted = error_id.strip().lower()
    for record in reversed(records.read_starts(control.starts_path(site), limit=1000)):
        if record.get("error_id") == wanted:
            print(control.describe_start(record))
            return True
    return False


def _say(kind: str, text: str) -> None:
    """The preview's messages, on stderr (stdout stays the app's)."""
    print(text if kind == "app-error" else f"[wsgi-shim serve] {text}", file=sys.stderr, flush=True)


def cmd_serve(args) -> int:
    from shim.ops import preview

    site = _site(args)
    try:
        preview.check_site(site)
        sock = preview.listen(args.host, args.port)
    except preview.PreviewError as exc:
        return _fail(args, str(exc))
    _say("serving", f"restart the app: {advice.command('restart', args.site)}   maintenance: "
                    f"{advice.command('maint on', args.site)} (and maint off)")
    preview.serve(site, sock, _say)
    return 0


def cmd_debug_url(args) -> int:
    from shim.ops.debuglogin import DebugUrlError, debug_url

    site = _site(args)
    try:
        url, until = debug_url(site, args.url)
    except DebugUrlError as exc:
        return _fail(args, str(exc))
    print(url)
    print(f"Open it in your browser before {until}: it sets the shim_debug_token cookie (HttpOnly, "
          "SameSite=Strict) and the site's error pages show you their details.", file=sys.stderr)
    return 0


def _quiet(kind: str, text: str) -> None:
    """The demo shows what goes wrong and what changes, not the routine."""
    if kind not in ("start", "serving", "stop"):
        _say(kind, text)


def cmd_demo(args) -> int:
    from shim.ops import preview

    try:
        sock = preview.listen(args.host, args.port)  # before anything is created
    except preview.PreviewError as exc:
        return _fail(args, str(exc))
    try:
        demo = preview.make_demo(Path(args.dir) if args.dir else None)
    except preview.PreviewError as exc:
        sock.close()
        return _fail(args, str(exc))
    removed = demo.temporary and not args.keep
    token = preview.new_token()
    print(f"wsgi-shim demo: serving a demo site; open {preview.owner_url(sock, token)}  (Ctrl-C stops)")
    print("  (the token in it lets only you in: other users of this machine can reach the port too)")
    print(f"  site directory: {demo.site.site}" + (" (removed when the demo stops; --keep keeps it)"
                                                   if removed else ""))
    print("  try /fail (a request that fails), and in another terminal:")
    for line in demo.try_lines():
        print("    " + line)
    sys.stdout.flush()
    try:
        preview.serve(demo.site, sock, _quiet, token)
    finally:
        if removed:
            preview.remove_demo(demo)
            print(f"wsgi-shim demo: removed {demo.site.site}", file=sys.stderr)
    return 0


def cmd_tasks(args) -> int:
    from shim.ops.taskfiles import TaskFilesError, write_task_files

    try:
        done = write_task_files(Path(args.dir), args.site, args.url, args.venv)
    except TaskFilesError as exc:
        return _fail(args, str(exc))
    print(f"Wrote {', '.join(p.name for p in done.files)} in {done.dir.absolute()} for the site {args.site}.")
    if not os.path.isdir(args.site):
        print(f"note: {args.site} is not a directory on this machine: right if it is the site's path on the host "
              "(fab -H). For a path in your home there, write it as '~/mysite', in quotes: unquoted, your shell "
              "turns ~ into your home here.")
    if done.inv:
        print(f"Run the tasks from there: {done.inv} --list   (e.g. {done.inv} check; over SSH: fab -H HOST check)")
    else:
        print(f"The tasks need Invoke (and Fabric for fab -H), which this venv lacks: {done.pip} install invoke "
              f"fabric, then: {Path(done.pip.strip(chr(39))).with_name('inv')} --list")
    return 0


# ---- deploy, rollback, releases (docs/deploying.md) ----------------------------------------


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 86400 or value != value:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, not {text}")
    return value


def _commit_id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError(f"not a full git commit id (40 hex digits): {text!r}")
    return text


def _wait_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=_seconds, default=0, metavar="SECONDS",
                   help="after the restart, wait up to SECONDS until a new process has started "
                        "(needs --url), as wsgi-shim restart --wait does")
    p.add_argument("--url", help="request this URL while waiting (Passenger restarts on a request)")


def _deploy_parsers(sub) -> None:
    from shim.ops.deploy import DEFAULT_KEEP, Limits

    p = sub.add_parser("deploy", help="deploy new code as a release: check it, then switch to it and restart")
    _site_arg(p)
    p.add_argument("source", metavar="SOURCE", help="the code to deploy: a directory or a .tar.gz/.tgz")
    p.add_argument("--maint", action="store_true",
                   help="show the maintenance page while the release commands run and the release is "
                        "switched (needs --url: waits until Passenger really serves the page)")
    p.add_argument("--run", action="append", default=[], metavar="CMD",
                   help="a release command, run in the new release with the site's Python and environment "
                        "before the switch (e.g. 'python manage.py migrate'); repeatable; replaces "
                        "config.toml's [deploy] run")
    p.add_argument("--ref", metavar="REF", help="deploy exactly this git commit, branch or tag of SOURCE "
                                                 "(a git repository); the commit is recorded")
    p.add_argument("--commit", type=_commit_id, metavar="SHA",
                   help="the git commit a tarball SOURCE was made from, to be recorded (inv deploy --ref sets it)")
    p.add_argument("--keep", type=_positive_int, default=DEFAULT_KEEP, metavar="N",
                   help=f"keep the N newest releases (default {DEFAULT_KEEP}); the current and the "
                        "previous one are always kept")
    p.add_argument("--no-requirements", action="store_true",
                   help="do not pip install the release's requirements.txt")
    p.add_argument("--shared-venv", action="store_true",
                   help="let pip install the release's requirements into a venv outside the site (the live "
                        "site sees them before the switch; a rollback does not restore the old ones)")
    p.add_argument("--no-request", action="store_true",
                   help="check the release without sending it its [check] requests (GET / by default)")
    p.add_argument("--no-rollback", action="store_true",
                   help="keep the new release live when it fails a request while the deploy waits "
                        "(by default the deploy switches back to the previous release)")
    p.add_argument("--no-compile", action="store_true",
                   help="do not byte-compile the release and its venv before the check (the first "
                        "requests after the switch then compile what they import)")
    p.add_argument("--init", action="store_true",
                   help='first deploy of an existing site: change config.toml\'s [wsgi] chdir "." '
                        'to "current" (that line only)')
    p.add_argument("--max-bytes", type=_positive_int, default=Limits.max_bytes, metavar="N",
                   help=f"refuse a release bigger than N bytes unpacked (default {Limits.max_bytes})")
    p.add_argument("--max-entries", type=_positive_int, default=Limits.max_entries, metavar="N",
                   help=f"refuse a release of more than N files and directories (default {Limits.max_entries})")
    p.add_argument("--allow-sparse", action="store_true", help="accept sparse files in a tar archive")
    p.add_argument("--maint-wait", type=_seconds, default=60, metavar="SECONDS",
                   help="with --maint: how long to wait for the maintenance page, and for the app after it "
                        "(default 60)")
    _wait_arguments(p)
    p = sub.add_parser("rollback", help="switch back to the release live before the current one (or --to RELEASE)")
    _site_arg(p)
    p.add_argument("--to", metavar="RELEASE", help="the release to go back to (default: the one that was "
                                                   "live before the current one); see wsgi-shim releases")
    p.add_argument("--no-request", action="store_true",
                   help="check the release without sending it its [check] requests (GET / by default)")
    _wait_arguments(p)
    p = sub.add_parser("releases", help="list the site's releases and what went live when")
    _site_arg(p)
    p.add_argument("--json", action="store_true", help="print the releases as JSON")


def _deploy_output():
    from shim.ops.deploy.steps import Output

    def say(text: str) -> None:
        print(text, flush=True)

    def warn(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    return Output(say, warn)


def _deploy_failure(prog: str, exc: BaseException) -> int:
    """The exit code and message of a deploy/rollback that stopped (already undone)."""
    from shim.ops.deploy import DeployError
    from shim.ops.deploy.journal import Interrupted

    if isinstance(exc, KeyboardInterrupt):
        signum = exc.signum if isinstance(exc, Interrupted) else 2
        print(f"{prog}: stopped by {exc.args[0] if exc.args else 'SIGINT'}; the site is as it was before.",
              file=sys.stderr)
        return 128 + signum
    for problem in getattr(exc, "problems", []):
        print(problem.as_text() + "\n", file=sys.stderr)
    if isinstance(exc, DeployError):
        print(f"{prog}: {exc}", file=sys.stderr)
    else:  # OSError
        print(f"{prog}: {getattr(exc, 'filename', None) or ''}: {getattr(exc, 'strerror', None) or exc}"
              .replace(": : ", ": ").lstrip(": "), file=sys.stderr)
    return 1


def cmd_deploy(args) -> int:
    from shim.ops.deploy import DeployError, Limits
    from shim.ops.deploy.steps import DeployOptions, deploy

    prog = "wsgi-shim deploy"
    site = _site(args)
    if args.url:
        control.check_url(args.url)
    source = Path(args.source).absolute()
    if not source.exists():
        print(f"{prog}: {source} does not exist (give a directory or a .tar.gz).", file=sys.stderr)
        return 1
    if args.wait and not args.url:
        print("note: --wait without --url: the new process starts only when a request arrives.", file=sys.stderr)
    opts = DeployOptions(source=source, maint=args.maint, keep=args.keep, requirements=not args.no_requirements,
                         init=args.init, wait=args.wait, url=args.url, run=args.run, ref=args.ref, commit=args.commit,
                         limits=Limits(args.max_bytes, args.max_entries, args.allow_sparse),
                         maint_wait=args.maint_wait, shared_venv=args.shared_venv,
                         compile=not args.no_compile, request=not args.no_request, rollback=not args.no_rollback)
    try:
        out = deploy(site, opts, _deploy_output())
    except (DeployError, OSError, KeyboardInterrupt) as exc:
        return _deploy_failure(prog, exc)
    for old in out.removed:
        print(f"Removed old release {old} (keeping {args.keep}).")
    print(f"Deployed {out.release}." + (f" To go back to {out.previous}: {advice.command('rollback', args.site)}"
                                        if out.previous else ""))
    if not out.restart_ok:
        print(f"{prog}: the new release is live but its process did not start cleanly (see above)."
              + (f" {advice.command('rollback', args.site)} goes back to {out.previous}." if out.previous else ""),
              file=sys.stderr)
        return 1
    return 0


def cmd_rollback(args) -> int:
    from shim.ops.deploy import DeployError
    from shim.ops.deploy.rollback import RollbackOptions, rollback

    prog = "wsgi-shim rollback"
    if args.url:
        control.check_url(args.url)
    try:
        opts = RollbackOptions(args.to, args.wait, args.url, not args.no_request)
        out = rollback(_site(args), opts, _deploy_output())
    except (DeployError, OSError, KeyboardInterrupt) as exc:
        return _deploy_failure(prog, exc)
    if out is None:
        return 0
    print(f"Rolled back to {out.release}." + (f" To undo: {advice.command('rollback', args.site, '--to', out.previous)}"
                                              if out.previous else ""))
    return 0 if out.restart_ok else 1


def cmd_releases(args) -> int:
    """The releases, newest first, current marked; then the history of what went live."""
    from shim.ops.deploy.listing import release_info

    site = _site(args)
    info = release_info(site)
    if args.json:
        print(json.dumps(info, indent=2))
        return 1 if info["error"] else 0
    if info["error"]:
        print(f"wsgi-shim releases: {info['error']}", file=sys.stderr)
    if info["unfinished"]:
        print(f"note: {info['unfinished']}; the next deploy, rollback or status repairs it.", file=sys.stderr)
    for name in info["ignored"]:
        print(f"note: {name} in {site.site / 'releases'} is not a valid release name (no such date); ignored.",
              file=sys.stderr)
    if not info["releases"]:
        deploy = advice.command("deploy", args.site, "SOURCE", task_args=())
        print(f"No releases in {site.site / 'releases'} yet ({deploy} makes one).")
        return 1 if info["error"] else 0
    for item in reversed(info["releases"]):
        mark = "*" if item["current"] else " "
        commit = f"  commit {item['commit'][:12]}" if item.get("commit") else ""
        now = "  (current)" if item["current"] else ""
        if item.get("undone"):
            now += "  (undone: switched back after it failed; the next deploy prunes it)"
        print(f"{mark} {item['name']}  deployed {item['deployed']}{commit}{now}")
    if info["current"] is None and not info["error"]:
        print(f"none is current: {site.approot / 'current'} does not exist (no deploy has finished yet).")
    if info["shared"]:
        held = ", ".join(e["path"] + ("" if e["exists"] else " (not created yet)") for e in info["shared"])
        print(f"shared, in {site.site / 'shared'} and linked into every release: {held}")
    if info["history"]:
        print("went live (newest first):")
        for h in reversed(info["history"]):
            gone = "" if h["kept"] else "  (removed)"
            print(f"  {h['time']}  {h['release']}  by {h['how']}{gone}")
    return 1 if info["error"] else 0


# ---- run, cron, alert (docs/jobs-and-alerts.md) --------------------------------------------


def _jobs_parsers(sub) -> None:
    p = sub.add_parser("run", help="run a command (or a [jobs.NAME] job) exactly as the app runs, "
                                   "output kept in the app log")
    _site_arg(p)
    p.add_argument("--job", metavar="NAME", help="run the job [jobs.NAME] of config.toml")
    p.add_argument("--timeout", type=_seconds, default=0, metavar="SECONDS",
                   help="stop the command after SECONDS (exit 124); default: the job's timeout, else none")
    p.add_argument("--lock", metavar="NAME", help="never run two commands with the same lock NAME at once: "
                                                  "a second one says so and exits 75 (--job NAME locks NAME)")
    p.add_argument("--wait-lock", action="store_true", help="with a lock held by another run: wait for it")
    p.add_argument("argv", nargs="*", metavar="-- CMD [ARGS...]",
                   help="the command and its arguments, after --")
    p = sub.add_parser("cron", help="install the site's [jobs] (and alert) in your crontab, as one marked block")
    _site_arg(p)
    p.add_argument("--show", action="store_true", help="print the block it would install; change nothing")
    p.add_argument("--remove", action="store_true", help="take the site's block out of the crontab")
    p = sub.add_parser("alert", help="mail the owner ([alerts] mail) what failed since the last alert")
    _site_arg(p)
    p.add_argument("--dry-run", action="store_true", help="print the mail instead of sending it; change nothing")


def cmd_run(args) -> int:
    from shim.ops.jobs.run import RunError, RunOptions, run

    command = args.argv
    if command and args.job:
        return _fail(args, "give either --job NAME or -- CMD [ARGS...], not both", 2)
    opts = RunOptions(command, args.job, args.timeout, args.lock, args.wait_lock)
    try:
        return run(_site(args), opts).exit
    except RunError as exc:
        for problem in exc.problems:
            print(problem.as_text() + "\n", file=sys.stderr)
        return _fail(args, str(exc), exc.code)


def cmd_cron(args) -> int:
    from shim.ops.jobs import cron
    from shim.ops.jobs.run import RunError

    if args.show and args.remove:
        return _fail(args, "give --show or --remove, not both", 2)
    try:
        result = cron.apply(_site(args), show=args.show, remove=args.remove)
    except (RunError, cron.CronError) as exc:
        for problem in getattr(exc, "problems", []):
            print(problem.as_text() + "\n", file=sys.stderr)
        return _fail(args, str(exc), getattr(exc, "code", 1))
    print(result)
    return 0


def cmd_alert(args) -> int:
    from shim.ops.jobs import alert
    from shim.ops.jobs.run import RunError

    try:
        outcome = alert.alert(_site(args), dry_run=args.dry_run)
    except (RunError, alert.AlertError) as exc:
        return _fail(args, str(exc), getattr(exc, "code", 1))
    print(outcome)
    return 0


COMMANDS = {"install": cmd_install, "check": cmd_check, "maint": cmd_maint, "restart": cmd_restart,
            "status": cmd_status, "logs": cmd_logs, "serve": cmd_serve, "demo": cmd_demo,
            "deploy": cmd_deploy, "rollback": cmd_rollback, "releases": cmd_releases,
            "run": cmd_run, "cron": cmd_cron, "alert": cmd_alert, "tasks": cmd_tasks,
            "debug-url": cmd_debug_url}

if __name__ == "__main__":
    sys.exit(main())
