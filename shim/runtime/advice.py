"""Commands in printed advice, written so that they run when pasted into a new shell.

A bare `wsgi-shim` is usually not on PATH (it lives in the site's venv), so advice names the
wsgi-shim that is running by its absolute path; in an app process under Passenger, the venv's
``bin/wsgi-shim`` (sys.prefix). When a task runs the command (`inv check`, `fab -H host deploy`),
the task sets ADVICE_ENV (and ADVICE_SITE_ENV) and the advice names the task instead::

    command("rollback", site, "--to", release)
      -> /home/me/mysite/venv/bin/wsgi-shim rollback /home/me/mysite --to R   (the command)
      -> inv rollback --to R                                                 (under inv)
      -> fab -H me@host rollback --site '~/mysite' --to R                    (fab, --site given)

The one place for this rule: the CLI, the deploy steps, check's fixes and the error page use it.
Standard library only (the runtime imports it).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ADVICE_ENV = "WSGI_SHIM_ADVICE"  # set by the tasks: "inv" or "fab -H HOST"
ADVICE_SITE_ENV = "WSGI_SHIM_ADVICE_SITE"  # the task's --site/--venv flags as given ("" from config)


def shim_command() -> str:
    """This wsgi-shim as a new shell can run it: the running script by absolute path, else the
    venv's bin/wsgi-shim, else this Python with -m shim.cli."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "wsgi-shim" and os.path.isfile(argv0):
        return shlex.quote(os.path.abspath(argv0))  # not realpath: a venv reached by a link stays so
    script = Path(sys.prefix) / "bin" / "wsgi-shim"
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m shim.cli"


def task_form() -> str:
    """The task runner that runs this command ("inv", "fab -H HOST"), or "" outside a task."""
    return os.environ.get(ADVICE_ENV, "").strip()


def command(sub: str, site: str | os.PathLike | None, *args: str, task_args: tuple[str, ...] | None = None) -> str:
    """The command that runs `wsgi-shim SUB SITE ARGS`, as the user should paste it: under a task
    the task's form (its site from the task's config or the --site the user gave; TASK_ARGS
    instead of ARGS where the task's flags differ). SUB may hold a positional word ("maint off")."""
    runner = task_form()
    if runner:
        words = [runner, sub, os.environ.get(ADVICE_SITE_ENV, "").strip(),
                 *(args if task_args is None else task_args)]
    else:
        words = [shim_command(), sub, *([shlex.quote(str(site))] if site else []), *args]
    return " ".join(w for w in words if w)
