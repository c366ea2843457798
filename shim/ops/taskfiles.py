"""`wsgi-shim tasks SITE`: the files that let `inv` and `fab` run the wsgi-shim tasks for a site.

tasks.py (for `inv`) and fabfile.py (for `fab`, which looks for a collection named fabfile) hold
the two lines docs/tasks.md shows; invoke.yaml and fabric.yaml hold the site's settings under
the ``shim`` key (each tool reads only its own). Nothing is overwritten: when one of them exists
already, nothing is written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

COLLECTION = '''"""The wsgi-shim tasks (`{tool} --list`); their settings are in {config}."""

from shim.tasks import ns

__all__ = ["ns"]
'''

FILES = (("tasks.py", "inv", "invoke.yaml"), ("fabfile.py", "fab", "fabric.yaml"))


class TaskFilesError(Exception):
    """A message for the user: nothing was written."""


@dataclass
class Written:
    dir: Path
    files: list[Path]
    inv: str  # how to run inv from this venv, or "" when invoke is not installed here
    pip: str  # this venv's pip


def settings_yaml(tool: str, site: str, url: str | None, venv: str | None) -> str:
    lines = [f"# Settings of the wsgi-shim tasks for `{tool}` (docs/tasks.md lists every key).", "shim:",
             f"  site: {json.dumps(site)}"]
    if venv:
        lines.append(f"  venv: {json.dumps(venv)}")
    if url:
        lines.append(f"  url: {json.dumps(url)}")
    return "\n".join(lines) + "\n"


def site_setting(site: str) -> str:
    """The site as the tasks should see it: absolute; a leading ~ (the host's home, for fab -H)
    is kept as written."""
    return site if site.startswith(("/", "~")) else os.path.abspath(site)


def write_task_files(dir: Path, site: str, url: str | None = None, venv: str | None = None) -> Written:
    """Write tasks.py, fabfile.py, invoke.yaml and fabric.yaml into DIR; all or nothing."""
    site = site_setting(site)
    contents: dict[Path, str] = {}
    for collection, tool, config in FILES:
        contents[dir / collection] = COLLECTION.format(tool=tool, config=config)
        contents[dir / config] = settings_yaml(tool, site, url, venv)
    there = [str(p) for p in contents if os.path.lexists(p)]
    if there:
        raise TaskFilesError(f"{', '.join(there)} already exist{'s' if len(there) == 1 else ''}; nothing was written "
                             "(wsgi-shim tasks never overwrites). Write into another directory with --dir, or add "
                             "`from shim.tasks import ns` to your tasks.py and `shim: site: ...` to invoke.yaml "
                             "yourself (docs/tasks.md).")
    if not dir.is_dir():
        raise TaskFilesError(f"{dir} is not a directory.")
    written: list[Path] = []
    try:
        for path, text in contents.items():
            with open(path, "x") as f:
                f.write(text)
            written.append(path)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise TaskFilesError(f"cannot write {exc.filename}: {exc.strerror}; nothing was left behind.") from None
    bindir = Path(sys.prefix) / "bin"
    has_invoke = importlib.util.find_spec("invoke") is not None and (bindir / "inv").is_file()
    return Written(dir, written, shlex.quote(str(bindir / "inv")) if has_invoke else "",
                   shlex.quote(str(bindir / "pip")))
