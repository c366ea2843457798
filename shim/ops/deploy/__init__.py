"""Releases, deploys and rollbacks: `wsgi-shim deploy`, `rollback` and `releases`.

    store.py         SITE/releases/NAME, the `current` link, the lock, the history of what went live
    unpack.py        a directory or tar archive into a release, safely and within limits
    configedit.py    config.toml's [wsgi] chdir = "current" for --init, one line, mode and group kept
    shared.py        [deploy] shared: data in SITE/shared/, linked into every release; check's warnings
    checkrelease.py  `wsgi-shim check` of a release before it is current (a shadow app root)
    commands.py      pip, compileall, release commands and git --ref, output streamed and secrets masked
    journal.py       each step recorded before it is taken; undo on signals, repair after kills
    steps.py         the deploy, step by step;  rollback.py  going back by history
    listing.py       `wsgi-shim releases` and the deploy lines of `status`

Operator side: standard library only, never imported by get_app(). See docs/deploying.md.
"""

from shim.ops.deploy.store import (CURRENT, DEFAULT_KEEP, RELEASES, DeployError, current_release,
                                   list_releases)
from shim.ops.deploy.unpack import SKIP_NAMES, Limits

# Files of the deploy tooling itself, not of the app: `inv deploy` leaves them out. Invoke and
# Fabric read project config from .yaml, .yml, .json and .py files of these names. (A tasks/
# package is left in: at the top of a project it may as well be the app's own, e.g. Celery's.)
TOOL_FILES = ("tasks.py", "fabfile.py",
              *(f"{name}.{ext}" for name in ("invoke", "fabric") for ext in ("yaml", "yml", "json", "py")))

__all__ = ["CURRENT", "DEFAULT_KEEP", "RELEASES", "SKIP_NAMES", "TOOL_FILES", "DeployError", "Limits",
           "current_release", "list_releases"]
