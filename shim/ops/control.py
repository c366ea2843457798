"""Maintenance mode and restarts: the files Passenger watches, and waiting for a new process.

Start records themselves are written by the runtime (shim.runtime.records)."""

from __future__ import annotations

import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from shim import __version__
from shim.runtime import records
from shim.runtime.config import LoggingConfig
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


class NoRestartDir(Exception):
    """A message for the user: the site has no tmp/ (PassengerRestartDir)."""


def _restart_dir(site: Site) -> None:
    if not site.tmp.is_dir():
        raise NoRestartDir(f"{site.tmp} does not exist; is {site.site} a site? (wsgi-shim install creates it)")


def set_maintenance(site: Site, on: bool, restart: bool = True) -> bool:
    """Maintenance mode on or off (and a restart, so that the next request shows it); returns
    False if it already was so. Raises NoRestartDir, OSError."""
    _restart_dir(site)
    changed = maint_on(site.maint_txt) if on else maint_off(site.maint_txt)
    if restart:
        touch_restart(site.restart_txt)
    return changed


def restart(site: Site, wait: float = 0, url: str | None = None) -> Restarted | None:
    """Make Passenger restart the site; with WAIT, wait for the new process (None without).
    Raises BadURL (before touching anything), NoRestartDir, OSError."""
    if url:
        check_url(url)
    _restart_dir(site)
    starts = starts_path(site)
    before = time.time()
    touch_restart(site.restart_txt)
    return wait_for_new_start(starts, before, wait, url) if wait else None


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
    # Now itself where possible (so the mtime compares right with start records' epochs, which
    # `status` uses to tell a pending restart), else the start of the next whole second.
    new = max(now, float(int(old) + 1))
    os.utime(restart_txt, (now, new))
    return new


class BadURL(ValueError):
    """A message for the user: the URL cannot be requested."""


def check_url(url: str) -> str:
    """Only http(s) URLs with a host: `file:` and the like would read local files, not the site."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise BadURL(f"--url {url!r} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadURL(f"--url {url!r} is not an http:// or https:// URL of the site "
                     "(e.g. https://www.example.org/).")
    try:
        parts.port
    except ValueError:
        raise BadURL(f"--url {url!r} has an invalid port.") from None
    return url


def http_get(url: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """GET an http(s) URL. Raises BadURL for any other URL, OSError when it cannot be reached."""
    import http.client  # with ssl, tens of ms: only for the commands that ask over HTTP
    import urllib.error
    import urllib.request

    request = urllib.request.Request(check_url(url), headers={"User-Agent": f"wsgi-shim/{__version__}"})
    # Cookies kept across redirects: the preview's printed URL logs in by a redirect that sets one.
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (http.client.HTTPException, ValueError) as exc:  # a server that does not speak HTTP
        raise OSError(f"no valid HTTP answer ({exc.__class__.__name__})") from None


@dataclass
class Probe:
    """What a URL answered: a status and what it serves, or why it could not be reached."""

    url: str
    status: int | None = None
    serving: str | None = None
    error: str | None = None

    def describe(self) -> str:
        url = shown_url(self.url)
        if self.status is None:
            return f"{url} is unreachable: {self.error}"
        return f"{url} answers {self.status}, serving {self.serving}"


def shown_url(url: str) -> str:
    """URL as printed: a preview's token (?wsgi-shim-preview=...) is a secret, never shown."""
    import re

    return re.sub(r"(wsgi-shim-preview=)[^&#]*", r"\1[token]", url)


def ask(url: str) -> Probe:
    """Request URL once and classify the answer. Never raises OSError (BadURL still)."""
    try:
        status, headers, _ = http_get(url)
    except OSError as exc:
        return Probe(shown_url(url), error=str(getattr(exc, "reason", None) or exc))
    return Probe(shown_url(url), status, classify_response(status, headers))


def site_logging(site: Site) -> LoggingConfig:
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


@dataclass
class Restarted:
    """The outcome of waiting for a new app process: the start it recorded, or (after a
    timeout) what the URL serves and the last start before the restart."""

    waited: float
    start: dict | None = None
    url: Probe | None = None
    previous: dict | None = None

    @property
    def ok(self) -> bool:
        """A new process serves the app or the maintenance page."""
        return self.start is not None and self.start.get("state") in ("app", "maintenance")

    def report(self) -> str:
        """As text, for the terminal: the new start, or why none was seen."""
        if self.start is not None:
            return "restarted: " + describe_start(self.start)
        lines = [f"no new process started within {self.waited:g} s."
                 + ("" if self.url else " No request reached the site: pass --url so wsgi-shim can make one.")]
        if self.url:
            lines.append(self.url.describe())
        if self.previous:
            lines.append("last start (before this restart): " + describe_start(self.previous))
        return "\n".join(lines)


def wait_for_new_start(starts: Path, before: float, wait: float, url: str | None) -> Restarted:
    """Wait until a process start newer than BEFORE is recorded (requesting URL meanwhile, as
    Passenger restarts on a request). Raises BadURL before waiting if URL is not an http(s) URL."""
    if url:
        check_url(url)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if url:
            try:
                http_get(url, timeout=max(1.0, deadline - time.monotonic()))
            except OSError:
                pass
        new = [r for r in records.read_starts(starts) if r.get("epoch", 0) > before]
        if new:
            return Restarted(wait, start=new[-1])
        time.sleep(0.5)
    old = records.read_starts(starts, limit=1)
    return Restarted(wait, url=ask(url) if url else None, previous=old[-1] if old else None)


# ---- status --------------------------------------------------------------------------------


def classify_response(status: int, headers: dict[str, str]) -> str:
    kind = {k.lower(): v for k, v in headers.items()}.get("x-wsgi-shim", "")
    if kind in ("maintenance", "error", "app-error", "preview-locked"):
        return kind  # preview-locked: a preview's 403 to a request without its cookie
    if status >= 500:
        return "server-error"  # e.g. Passenger's own "We're sorry" page
    return "app"


