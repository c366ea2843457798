"""Tasks for jobs and alerts (docs/jobs-and-alerts.md): run, cron, alert.

Thin, like the other tasks: each builds a `wsgi-shim` command for the site's venv and hands it to
c.run, here under `inv` and on the host under `fab -H`. The command of `run` is one quoted
flag, --command "..." (not after `--`: fab would run a `--` remainder as a shell command of its
own; and invoke has no optional positional, which --job would need).
"""

from __future__ import annotations

import shlex
import sys

from invoke.exceptions import Exit

from shim.tasks.flags import SITE_HELP, VENV_HELP, shim_task
from shim.tasks.remote import paths, run as run_remote


@shim_task(name="run", help={
    "command": "the command, quoted as one argument: \"python manage.py createsuperuser\"",
    "job": "run the job [jobs.NAME] of config.toml instead",
    "timeout": "stop the command after SECONDS (exit 124)",
    "lock": "never two runs with this lock NAME at once (the second exits 75)",
    "wait-lock": "wait for a lock held by another run instead",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def run_command(c, command=None, job=None, timeout=None, lock=None, wait_lock=False, site=None, venv=None):
    """Run a command exactly as the app runs (its venv, [environment], secrets, directory).

    With a terminal the command gets one too (here and over `fab -H`): createsuperuser and
    shell work. Its output is also kept in the app log; the exit status is the command's.

    Example: inv run --command "python manage.py createsuperuser"     or: inv run --job clearsessions
    """
    if bool(command) == bool(job):
        raise Exit('run: give --command "python manage.py migrate" or --job NAME (one of them)', code=2)
    try:
        argv = shlex.split(command) if command else []
    except ValueError as exc:
        raise Exit(f"run: the command cannot be split into words: {exc}", code=2) from None
    args: list[str] = []
    if timeout is not None:
        try:
            args += ["--timeout", f"{float(timeout):g}"]
        except ValueError:
            raise Exit(f"run: --timeout takes seconds, not {timeout!r}", code=2) from None
    if lock:
        args += ["--lock", shlex.quote(lock)]
    if wait_lock:
        args.append("--wait-lock")
    if job:
        args += ["--job", shlex.quote(job)]
    else:
        args += ["--", *map(shlex.quote, argv)]
    p = paths(c, site, venv)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    run_remote(c, p.shim("run", *args), "run", p=p, pty=interactive)


@shim_task(help={
    "show": "print the block it would install; change nothing",
    "remove": "take the site's block out of the crontab",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def cron(c, show=False, remove=False, site=None, venv=None):
    """Install the site's [jobs] (and its alert check) in the crontab, as one marked block.

    Other crontab lines are kept as they are; running it again changes nothing.

    Example: inv cron --show
    """
    p = paths(c, site, venv)
    run_remote(c, p.shim("cron", *(["--show"] if show else []), *(["--remove"] if remove else [])), "cron", p=p)


@shim_task(help={"dry-run": "print the mail instead of sending it", "site": SITE_HELP, "venv": VENV_HELP})
def alert(c, dry_run=False, site=None, venv=None):
    """Mail [alerts] mail what failed since the last alert (nothing when nothing is new).

    Example: inv alert --dry-run
    """
    p = paths(c, site, venv)
    run_remote(c, p.shim("alert", *(["--dry-run"] if dry_run else [])), "alert", p=p)
