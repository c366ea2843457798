"""Usage mistakes on the `inv` / `fab` command line: a misspelt task or flag, a flag without its
value, a task without its positional word. Invoke answers them with `No idea what 'chek' is!`
and exit 1; with these tasks loaded the answer adds a did-you-mean and what to run next, and the
exit status is 2, a usage error, as docs/tasks.md says for every task.

`inv` and `fab` are Invoke's and Fabric's own programs: the only place our code runs before
they parse the task names is the import of the user's tasks.py / fabfile.py, which imports this
package. So install() wraps Program.parse_tasks, once, for this process only. (Where there is no
tasks.py at all, nothing of ours is loaded: docs/troubleshooting.md has that message's row.)
"""

from __future__ import annotations

import difflib
import re

from invoke.exceptions import Exit
from invoke.parser import ParseError
from invoke.program import Program

USAGE_EXIT = 2
_UNKNOWN = re.compile(r"No idea what '(.*)' is!")
_NEEDS_VALUE = re.compile(r"Flag <Argument: (\w+)\b.*> needed value")


def runner_name(program: Program) -> str:
    """`fab` or `inv`, whichever the user typed (python -m invoke counts as inv)."""
    fabric = type(program).__module__.startswith("fabric") or "fab" in (program.called_as or "")
    return "fab" if fabric else "inv"


def explain(program: Program, exc: ParseError) -> str:
    """Invoke's message for EXC, then a did-you-mean where one fits, then where to look."""
    name = runner_name(program)
    said = str(exc)
    context = getattr(exc, "context", None)
    task = getattr(context, "name", None) if context is not None else None
    lines = [said]
    unknown = _UNKNOWN.fullmatch(said)
    if unknown:
        word = unknown.group(1)
        if word.startswith("-") and task:
            flags = [f for f in getattr(context, "flags", {}) if f.startswith("--")]
            close = difflib.get_close_matches(word if word.startswith("--") else "-" + word, flags, n=1, cutoff=0.6)
            if close:
                lines.append(f"Did you mean {close[0]}? {name} --help {task} lists its flags.")
            else:
                lines.append(f"{task} has no flag {word}: {name} --help {task} lists its flags.")
        else:
            names = list(program.collection.task_names) if program.collection is not None else []
            close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            lines.append(f"{hint}{name} --list lists the tasks; {name} --help TASK shows a task's flags.")
    elif task:
        needs = _NEEDS_VALUE.match(said)
        flag = f"--{needs.group(1).replace('_', '-')} needs a value. " if needs else ""
        lines.append(f"{flag}{name} --help {task} shows how to call it.")
    return "\n".join(lines)


def install() -> None:
    """Make a usage mistake end with explain()'s message and exit 2 (idempotent)."""
    original = Program.parse_tasks
    if getattr(original, "_wsgi_shim", False):
        return

    def parse_tasks(self: Program) -> None:
        try:
            original(self)
        except ParseError as exc:
            raise Exit(explain(self, exc), code=USAGE_EXIT) from None

    parse_tasks._wsgi_shim = True  # type: ignore[attr-defined]
    Program.parse_tasks = parse_tasks  # type: ignore[method-assign]
