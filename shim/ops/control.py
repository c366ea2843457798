"""Maintenance mode and restarts: the files Passenger watches, and waiting for a new process.

Start records themselves are written by the runtime (shim.runtime.records)."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from shim import __version__
from shim.runtime import records
from shim.runtime.layout import Site
from shim.runtime.permissions import create_private_file
from shim.runtime.problems import Problem

MAINT_NOTE = "wsgi-shim: this file switches the site into maintenance mode. Remove it to go live.\n"


def maint_on(maint_txt: Path) -> bool:
    """Returns False if maintenance mode was already on."""
    if maint_txt.exists():
        return False
    create_private_file(maint_txt, MAINT_NOTE)
    return True


def maint_off(maint_txt: Path) -> bool:
    try:
        maint_txt.unlink()
    except FileNotFoundError:
        return False
    return True


def touch_restart(restart_txt: Path) -> float:
    """Make Passenger restart the app on its next request; returns the new mtime.

    Passenger compares restart.txt's mtime at one-second resolution, so a second touch in the
    same second would be ignored: the new mtime is always at least one whole second later than
    the previous one. The file's permissions are kept; it is created if missing.
    """
    now = time.time()
    try:
        old = os.stat(restart_txt).st_mtime
    except FileNotFoundError:
        create_private_file(restart_txt)
        old = -1.0
    new = float(max(int(now), int(old) + 1))
    os.utime(restart_txt, (now, new))
    return new


def http_get(url: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": f"wsgi-shim/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def site_logging(site: Site):
    """The site's [logging] settings (log and start-record paths); defaults if config.toml is unreadable."""
    from shim.runtime.config import load_config
    from shim.runtime.loader import default_logging

    cfg, _ = load_config(site.approot)
    return cfg.logging if cfg else default_logging(site.approot)


def starts_path(site: Site) -> Path:
    return site_logging(site).starts_path


def describe_start(record: dict) -> str:
    lines = [f"{record.get('time')} pid {record.get('pid')}: serving "
             + {"app": "the app", "maintenance": "the maintenance page",
                "error": "the error page"}.get(record.get("state"), str(record.get("state")))
             + (f" (error id {record['error_id']})" if record.get("error_id") else "")]
    for p in record.get("problems", []):
        lines.append(Problem.from_dict(p).as_text())
    return "\n".join(lines)


def wait_for_new_start(starts: Path, before: float, wait: float, url: str | None,
                       prog: str = "wsgi-shim restart") -> int:
    """Wait until a process start newer than BEFORE is recorded (requesting URL meanwhile, as
    Passenger restarts on a request) and report it; 0 when it serves the app or maintenance."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if url:
            try:
                http_get(url, timeout=max(1.0, deadline - time.monotonic()))
            except OSError:
                pass
        new = [r for r in records.read_starts(starts) if r.get("epoch", 0) > before]
        if new:
            record = new[-1]
            print("restarted: " + describe_start(record))
            return 0 if record.get("state") in ("app", "maintenance") else 1
        time.sleep(0.5)
    hint = "" if url else " No request reached the site: pass --url so wsgi-shim can make one."
    print(f"{prog}: no new process started within {wait:g} s.{hint}", file=sys.stderr)
    if url:
        try:
            status, headers, _ = http_get(url)
            print(f"{url} answers {status}, serving {classify_response(status, headers)}", file=sys.stderr)
        except OSError as exc:
            print(f"{url} is unreachable: {getattr(exc, 'reason', exc)}", file=sys.stderr)
    old = records.read_starts(starts, limit=1)
    if old:
        print("last start (before this restart): " + describe_start(old[-1]), file=sys.stderr)
    return 1


# ---- status --------------------------------------------------------------------------------


def classify_response(status: int, headers: dict[str, str]) -> str:
    kind = {k.lower(): v for k, v in headers.items()}.get("x-wsgi-shim", "")
    if kind in ("maintenance", "error", "app-error"):
        return kind
    if status >= 500:
        return "server-error"  # e.g. Passenger's own "We're sorry" page
    return "app"


