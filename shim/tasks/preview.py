"""The local preview: `serve` (a site's passenger_wsgi.py on waitress) and `demo`."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from invoke.exceptions import Exit, UnexpectedExit

from shim.tasks.config import setting
from shim.tasks.flags import SITE_HELP, VENV_HELP, shim_task
from shim.tasks.remote import is_remote, local, paths, q, run


@shim_task(help={
    "host": "address to listen on (default: config shim.host, 127.0.0.1)",
    "port": "port to listen on (default: config shim.port, 8000)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def serve(c, host=None, port=None, site=None, venv=None):
    """Preview the site without Apache: its passenger_wsgi.py, loaded as Passenger loads it.

    Runs the app with the site's passenger_python on waitress, restarts it when tmp/restart.txt
    is touched and shows the maintenance page while tmp/maint.txt exists. Ctrl-C stops it.
    Under `fab -H host` it runs on the host; reach it with ssh -L PORT:127.0.0.1:PORT host.

    Example: inv serve --port 8001
    """
    p = paths(c, site, venv)
    host = setting(c, "host", host)
    port = setting(c, "port", port)
    run(c, p.shim("serve", "--host", shlex.quote(str(host)), "--port", str(int(port))),
        "serve", p=p, pty=is_remote(c))


def local_wsgi_shim() -> str:
    """The wsgi-shim command of the Python running these tasks (the demo needs no site venv)."""
    script = Path(sys.executable).parent / "wsgi-shim"
    if script.is_file():
        return q(str(script))
    found = shutil.which("wsgi-shim")
    if found:
        return q(found)
    return f"{q(sys.executable)} -m shim.cli"


@shim_task(help={
    "dir": "where to create the demo site (default: a new temporary directory)",
    "host": "address to listen on (default: config shim.host, 127.0.0.1)",
    "port": "port to listen on (default: config shim.port, 8000)",
})
def demo(c, dir=None, host=None, port=None):
    """Create a throwaway demo site and preview it: the quickest way to see the shim work.

    Always runs on this machine, with the Python running these tasks.

    Example: inv demo --port 8001
    """
    host = setting(c, "host", host)
    port = setting(c, "port", port)
    args = [local_wsgi_shim(), "demo"]
    if dir:
        args.append(q(str(dir)))
    args += ["--host", shlex.quote(str(host)), "--port", str(int(port))]
    try:
        local(c)(" ".join(args))
    except UnexpectedExit as exc:
        raise Exit(f"demo failed (exit {exc.result.exited})", code=exc.result.exited or 1) \
            from None
