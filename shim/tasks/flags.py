"""How every task is declared: ``@shim_task`` instead of invoke's ``@task``.

It gives the same short flag to the same option in every task (never ``-h``, which stays
``--help``), types the flags that take numbers (``--keep=INT``, not ``--keep=STRING``), and
before the task's body runs, validates the ``shim`` configuration and, under ``fab -H``, checks
the host key and connects. So no task can skip the host-key check or run on a misspelt setting.
"""

from __future__ import annotations

import functools
import inspect
import shlex
from collections.abc import Callable
from typing import Any

from invoke import Argument, Task, task
from invoke.exceptions import Exit
from invoke.parser import ParseError

from shim.tasks import config, remote

# One short flag per option, the same in every task that has it. Options not listed have none:
# their first letters would clash (-h for --host would hide --help, -i for --id fab's -i, ...).
SHORT_FLAGS = {
    "site": "s", "venv": "v", "url": "u", "wait": "w", "json": "j", "follow": "f",
    "errors": "e", "lines": "n", "port": "p", "keep": "k", "maint": "m",
}

SITE_HELP = "site directory (default: config shim.site)"
VENV_HELP = "the site's venv (default: config shim.venv, else SITE/venv)"

# Flags whose value is a number; invoke would otherwise take any text and show =STRING.
INT_FLAGS = {"keep", "lines", "port", "jobs"}


class NumberArgument(Argument):
    """An INT flag whose bad value is a usage message (invoke's own int() would traceback)."""

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast)
        except ValueError:
            raise ParseError(f"--{self.name} takes a whole number, not {value!r}") from None


class ShimTask(Task):
    """An invoke Task whose short flags and flag types come from the tables above."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        self.auto_shortflags = False
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short and short not in taken_names and not opts["positional"]:
            opts["names"] = [*opts["names"], short]
        if name in INT_FLAGS and "kind" not in opts:
            opts["kind"] = int
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        # invoke pops each flag's help while building the arguments, so a second call (the
        # docs test, a second parser) would get flags without help: keep the dict intact.
        kept = dict(self.help)
        try:
            args = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept
        for arg in args:
            if arg.kind is int:
                arg.__class__ = NumberArgument
        return args


def shim_task(*args: Any, **kwargs: Any) -> Callable:
    """@task for the wsgi-shim tasks: checked config and host key first (see module doc)."""

    def decorate(body: Callable) -> Task:
        @functools.wraps(body)
        def checked(c, *a: Any, **kw: Any) -> Any:
            if not remote.is_remote(c):
                remote.say_local(c)  # `fab TASK` without -H: said before any advice, config's included
            config.validate(c)
            remote.connect(c)
            remote.set_advice(c, kw.get("site"), kw.get("venv"))
            return body(c, *a, **kw)

        checked.__signature__ = inspect.signature(body)  # type: ignore[attr-defined]
        return task(klass=ShimTask, **kwargs)(checked)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def wait_args(c, wait: Any, url: str | None, name: str, url_without_wait: bool = False) -> list[str]:
    """`--wait SECONDS --url URL` for wsgi-shim from a task's --wait[=S] and --url/shim.url."""
    args: list[str] = []
    if wait:
        seconds = config.setting(c, "restart_wait") if wait is True else wait
        try:
            seconds = float(seconds)
        except ValueError:
            raise Exit(f"{name}: --wait takes seconds, not {wait!r}", code=2) from None
        args = ["--wait", f"{seconds:g}"]
    url = site_url(c, url, name)
    if url and (wait or url_without_wait):
        args += ["--url", shlex.quote(url)]
    return args


def site_url(c, url: str | None, name: str) -> str | None:
    """--url or config shim.url; one with user:password@ is refused before any command is built
    (under `fab` it would be on the server's command line, visible in `ps`), and not printed."""
    from shim.ops.control import CREDENTIALS_REFUSED, has_credentials

    url = config.setting(c, "url", url)
    if url and has_credentials(str(url)):
        raise Exit(f"{name}: the URL (--url or shim.url) {CREDENTIALS_REFUSED}", code=2)
    return url
