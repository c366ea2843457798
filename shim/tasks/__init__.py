"""Invoke / Fabric tasks for a wsgi-shim site: the same task runs locally (`inv`) and over SSH
(`fab -H user@host`).

Use them from your own site repository without copying code::

    pip install 'wsgi-shim[tasks]'

    # tasks.py (for `inv`) and/or fabfile.py (for `fab`), two lines each:
    from shim.tasks import ns
    ns.configure({"shim": {"site": "/home/me/mysite"}})

Settings live under the ``shim`` key of the Invoke/Fabric configuration. The defaults below are
set on the collection; invoke.yaml (for `inv`), fabric.yaml (for `fab`), `-f FILE` (both) and
INVOKE_SHIM_* / FABRIC_SHIM_* environment variables override them, e.g. ``INVOKE_SHIM_SITE=/srv/x``.
Every task also takes ``--site`` to override ``shim.site`` for one call.

Nothing here is imported by get_app(): invoke and fabric are only needed where tasks are run.
"""

from __future__ import annotations

import importlib
import importlib.util

from invoke import Collection, Task

from shim.tasks import deploy, site

DEFAULTS: dict[str, object] = {
    # The site directory (holds the app root, the docroot and, by default, the venv). Tasks that
    # touch a site refuse to guess it: set it in the config or pass --site.
    "site": "",
    # The site's virtual environment; empty means <site>/venv.
    "venv": "",
    # Names of the app root and document root inside the site directory.
    "approot": "www-approot",
    "docroot": "www-docroot",
    # The site's public URL; lets `restart --wait` and `status` ask over HTTP.
    "url": "",
    # What `install` puts into the venv: a built wheel file (local path), or else this checkout
    # (or `source`, a local checkout / pip requirement).
    "wheel": "",
    "source": "",
    # Passed to `wsgi-shim install` when `install` creates the site.
    "user": "",
    "group": "",
    "app": "",
    # SSH (fab -H): how host keys are checked. Fabric alone accepts any key; these tasks check
    # it against known_hosts (empty: ~/.ssh/known_hosts). strict: unknown hosts are refused;
    # accept-new: unknown hosts are recorded, changed keys refused; off: Fabric's behaviour.
    "known_hosts": "",
    "host_key_policy": "strict",
    # Seconds `restart --wait` waits for the new process by default.
    "restart_wait": 30,
    # The local preview (`serve`, `demo`).
    "host": "127.0.0.1",
    "port": 8000,
    # Python the site runs on (build-python / venv tasks): version to build, where to install it,
    # and the interpreter a venv is made from (empty: <python_prefix>/bin/pythonX.Y).
    "python_version": "3.11.2",
    "python_prefix": "",
    "python": "",
    # build-python: where it downloads and builds (empty: its default), and the host's Passenger
    # version, so it can warn that Passenger < 6.0.19 cannot load apps on Python 3.12+.
    "python_build_dir": "",
    "passenger_version": "",
}

ns = Collection()
for _task in (site.install, site.check, site.maint, site.restart, site.status, site.logs,
              site.serve, site.demo, deploy.deploy, deploy.rollback, deploy.releases):
    ns.add_task(_task)

# build-python and venv live in shim/tasks/python.py (written separately); add them when present.
# An ImportError *inside* that module must still surface, so only its absence is tolerated.
if importlib.util.find_spec("shim.tasks.python") is not None:
    _python = importlib.import_module("shim.tasks.python")
    for _name in dir(_python):
        _obj = getattr(_python, _name)
        if isinstance(_obj, Task) and _obj.body.__module__ == _python.__name__:
            ns.add_task(_obj)

ns.configure({"shim": dict(DEFAULTS)})

__all__ = ["DEFAULTS", "ns"]
