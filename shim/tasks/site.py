"""Tasks for one site: check, maintenance, restart, status, logs.

Each builds a `wsgi-shim` command and hands it to the remote helper (shim/tasks/remote.py), so
it runs the same here under `inv` and on the host under `fab -H user@host`. The work itself is
done by the venv's ``wsgi-shim`` (shim/cli.py).
"""

from __future__ import annotations

import shlex

from invoke.exceptions import Exit

from shim.tasks.flags import SITE_HELP, VENV_HELP, shim_task, site_url, wait_args
from shim.tasks.remote import is_remote, paths, run, where


@shim_task(help={"site": SITE_HELP, "venv": VENV_HELP, "json": "print the problems as JSON",
                 "request": "send the app its [check] requests after the import (default; --no-request "
                            "imports only)",
                 "url": "the site's public URL: a Django project's ALLOWED_HOSTS must hold its host "
                        "(default: config shim.url)"})
def check(c, site=None, venv=None, json=False, url=None, request=True):
    """Check the site the way its next process start will; list every problem with its fix.

    Exits 0 only when the site would serve its app.

    Example: inv check --site ~/mysite
    """
    p = paths(c, site, venv)
    url = site_url(c, url, "check")
    args = (["--json"] if json else []) + (["--url", shlex.quote(url)] if url else []) \
        + ([] if request else ["--no-request"])
    result = c.run(p.shim("check", *args), warn=True)
    if not result.ok:
        raise Exit(f"the site{where(c)} has problems (listed above)" if result.exited == 1
                   else f"wsgi-shim check failed{where(c)} (exit {result.exited})",
                   code=result.exited or 1)


@shim_task(positional=["action"], help={
    "action": "on (show the maintenance page), off, or status",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def maint(c, action, site=None, venv=None):
    """Maintenance mode: `maint on`, `maint off` or `maint status`.

    On creates tmp/maint.txt, off removes it; either touches tmp/restart.txt so the app process
    restarts and the change shows on the next request (follow with `inv restart --wait` to be
    sure it has).

    Example: inv maint on
    """
    if action in ("-h", "--help"):  # invoke hands a positional the next word, -h included
        import inspect

        print("Usage: inv maint on|off|status [-s SITE] [-v VENV]   (also: fab -H HOST maint ...)\n\n"
              + inspect.cleandoc(maint.__doc__ or "") + "\n\nAll options: inv --help maint")
        return
    if action not in ("on", "off", "status"):
        raise Exit(f"maint: expected on, off or status, not {action!r}", code=2)
    p = paths(c, site, venv)
    run(c, p.shim(f"maint {action}"), f"maint {action}", p=p)


@shim_task(optional=["wait"], help={
    "wait": "wait until the new process has started (a new start record); optional SECONDS "
            "(default: config shim.restart_wait); needs a URL to send the request that starts it",
    "url": "the site's public URL (default: config shim.url)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def restart(c, wait=None, url=None, site=None, venv=None):
    """Restart the app (touch tmp/restart.txt); with --wait, return once the new process runs.

    With --wait and a URL, requests the URL until a new process start is recorded, then reports
    whether it serves the app, the maintenance page or an error page (exit 1 on error or timeout).

    Example: inv restart --wait --url https://mysite.example.org/
    """
    p = paths(c, site, venv)
    run(c, p.shim("restart", *wait_args(c, wait, url, "restart", url_without_wait=True)), "restart",
        p=p)


@shim_task(help={
    "url": "also ask the site over HTTP (default: config shim.url)",
    "json": "print the status as JSON",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def status(c, url=None, json=False, site=None, venv=None):
    """Is the site serving its app, the maintenance page or an error page?

    From the last process start record and a check of the site; with a URL, over HTTP as well.
    Exits 0 when it serves the app or the maintenance page, 1 on an error page.

    Example: inv status --url https://mysite.example.org/
    """
    p = paths(c, site, venv)
    args: list[str] = []
    url = site_url(c, url, "status")
    if url:
        args += ["--url", shlex.quote(url)]
    if json:
        args.append("--json")
    result = c.run(p.shim("status", *args), warn=True)
    if result.exited == 1:
        raise Exit(f"the site{where(c)} is not serving its app or the maintenance page "
                   "(see above)", code=1)
    if not result.ok:
        raise Exit(f"wsgi-shim status failed{where(c)} (exit {result.exited})",
                   code=result.exited or 1)


@shim_task(help={
    "follow": "keep printing new lines as they are written (Ctrl-C to stop)",
    "errors": "only errors and tracebacks",
    "since": "only entries since SPEC (e.g. 10m, 2h, 1d, or an ISO time)",
    "lines": "show the last N entries (wsgi-shim logs -n)",
    "id": "show the entry of this error id (printed on the 500 page)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def logs(c, follow=False, errors=False, since=None, lines=None, id=None, site=None, venv=None):
    """Show the site's app log (output, warnings, logging and tracebacks) and process starts.

    Example: inv logs --errors --since 1h
    """
    p = paths(c, site, venv)
    args: list[str] = []
    if follow:
        args.append("--follow")
    if errors:
        args.append("--errors")
    if since:
        args += ["--since", shlex.quote(str(since))]
    if lines:
        args += ["-n", str(int(lines))]
    if id:
        args += ["--id", shlex.quote(str(id))]
    # Over SSH a pty makes Ctrl-C end the remote `--follow` too, not just our side.
    run(c, p.shim("logs", *args), "logs", p=p, pty=bool(follow and is_remote(c)))
