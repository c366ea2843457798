"""Hand-made Passenger sites for e2e tests that must control every file mode themselves.

A raw site is SITE/{www-approot,www-docroot,venv} owned by the site user, with a plain
passenger_wsgi.py that reports its pid, uid, gid and sys.prefix, and no wsgi-shim at all.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.support.apache import ApacheServer

USER, GROUP = "shimsite", "shimproj"
PYTHON = "/usr/bin/python3"  # Debian's; the default python3 here is not executable by others

RAW_APP = """\
import os, sys
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"pid={os.getpid()} uid={os.getuid()} gid={os.getgid()} prefix={sys.prefix}".encode()]
"""


def as_site_user(*cmd: str) -> None:
    # umask 077: whatever the site user creates gets no group or world bits at all.
    subprocess.run(["runuser", "-u", USER, "-g", GROUP, "--", "sh", "-c", 'umask 077; "$@"',
                    "sh", *cmd], check=True)


def make_raw_site(base: Path, name: str, *, site: int = 0o711, approot: int = 0o700,
                  startup: int = 0o600, tmp: int = 0o700, docroot: int = 0o711) -> Path:
    """SITE/{www-approot,www-docroot} owned by the site user, with exactly the given modes."""
    top = base / name
    ar, dr = top / "www-approot", top / "www-docroot"
    (ar / "tmp").mkdir(parents=True)
    dr.mkdir()
    (ar / "passenger_wsgi.py").write_text(RAW_APP)
    (dr / "static.txt").write_text("static file\n")
    subprocess.run(["chown", "-R", f"{USER}:{GROUP}", str(top)], check=True)
    for path, mode in ((top, site), (ar, approot), (ar / "passenger_wsgi.py", startup),
                       (ar / "tmp", tmp), (dr, docroot), (dr / "static.txt", 0o644)):
        os.chmod(path, mode)
    # The site user creates restart.txt itself, as `wsgi-shim restart` would: mode 0600.
    as_site_user("touch", str(ar / "tmp" / "restart.txt"))
    # A venv of the site user's own (no pip: fast), 0700 like everything else private.
    as_site_user(PYTHON, "-m", "venv", "--without-pip", str(top / "venv"))
    return top


def serve_raw(apache: ApacheServer, top: Path) -> str:
    return apache.serve(top.name, top / "www-approot", top / "www-docroot",
                        user=USER, group=GROUP, python=top / "venv" / "bin" / "python")


def touch_restart(restart_txt: Path) -> None:
    """Touch as the site user in a later whole second than the current mtime.

    Passenger compares restart.txt mtimes at one-second resolution, so a touch within the
    same second as the mtime it last saw is ignored.
    """
    while int(time.time()) <= int(restart_txt.stat().st_mtime):
        time.sleep(0.05)
    as_site_user("touch", str(restart_txt))
