"""Invoke / Fabric tasks for a wsgi-shim site: the same task runs locally (`inv`) and over SSH
(`fab -H user@host`).

Use them from your own site repository without copying code (install: docs/tasks.md)::

    # tasks.py (for `inv`) and/or fabfile.py (for `fab`), two lines each:
    from shim.tasks import ns
    ns.configure({"shim": {"site": "/home/me/mysite"}})

Settings live under the ``shim`` key of the Invoke/Fabric configuration (shim/tasks/config.py
lists them with their defaults and validates them). Every task also takes ``--site`` to
override ``shim.site`` for one call.

Modules: config (settings), remote (paths, SSH with the host-key policy, run, quoting), flags
(@shim_task: the same short flags everywhere, typed flags, config and host key checked first),
usage (a misspelt task or flag: did-you-mean, exit 2), then the tasks: site, install, preview, python, deploy, jobs.

Nothing here is imported by get_app(): invoke and fabric are only needed where tasks are run.
"""

from __future__ import annotations

from invoke import Collection

from shim.tasks import deploy, install, jobs, preview, python, site, usage
from shim.tasks.config import DEFAULTS

ns = Collection()
for _task in (install.install, site.check, site.maint, site.restart, site.status, site.logs,
              preview.serve, preview.demo, deploy.deploy, deploy.rollback, deploy.releases,
              python.build_python, python.venv, jobs.run_command, jobs.cron, jobs.alert):
    ns.add_task(_task)

ns.configure({"shim": dict(DEFAULTS)})
usage.install()  # `inv chek`: a did-you-mean and exit 2 (shim/tasks/usage.py)

__all__ = ["DEFAULTS", "ns"]
