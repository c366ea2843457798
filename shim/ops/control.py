"""Maintenance mode and restarts: the files Passenger watches, and waiting for a new process.

Start records themselves are written by the runtime (shim.runtime.records)."""

from __future__ import annotations

import contextlib
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shim import __version__
from shim.runtime import advice, records
from shim.runtime.config import LoggingConfig
from shim.runtime.layout import Site
from shim.runtime.permissions import create_private_file
from shim.runtime.problems import Problem

MAINT_NOTE = "wsgi-shim: this file switches the site into maintenance mode. Remove it to go live.\n"


def maint_on(maint_txt: Path) -> bool:
    """Returns False if maintenance mode was already on."""
    if maint_txt.exists():
        return False
    with naming(maint_txt):
        create_private_file(maint_txt, MAINT_NOTE)
    return True


def maint_off(maint_txt: Path) -> bool:
    try:
        with naming(maint_txt):
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
    logging_cfg = site_logging(site)
    tail = _log_tail(logging_cfg.path)
    before = time.time()
    stamp = touch_restart(site.restart_txt)
    return wait_for_new_start(logging_cfg.starts_path, before, wait, url, stamp, tail, site) if wait else None


def _log_tail(path: Path):
    from shim.ops.watch import LogTail

    return LogTail(path)


def touch_restart(restart_txt: Path) -> float:
    """Make Passenger restart the app on its next request; returns the new mtime.

    Passenger compares restart.txt's mtime at one-second resolution, so a second touch in the
    same second would be ignored: the new mtime is always at least one whole second later than
    the previous one. The file's permissions are kept; it is created if missing.
    """
    now = time.time()
    with naming(restart_txt):
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


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Every OSError raised inside names PATH: os.utime on a read-only file system, a write or an
    fchmod on a descriptor raise without a file name, and "cannot touch None" helps nobody."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


class BadURL(ValueError):
    """A message for the user: the URL cannot be requested."""


# user[:password]@ before the host (with or without a scheme): never printed, never passed on.
_USERINFO = re.compile(r"^(?:[A-Za-z][\w+.-]*:)?(?://)?[^/?#\s]*@")
CREDENTIALS_REFUSED = ("holds a user name or password (user:password@...): refused, so that it is never "
                       "printed, logged or put on a command line. Give the site's URL without it; to "
                       "check a site behind HTTP authentication, name a page that needs none.")
# The most of an answer we read: enough to tell the page, never a whole download.
READ_LIMIT = 256 * 1024


def has_credentials(url: str) -> bool:
    """True when URL carries a user name or password (https://user:pw@host/)."""
    return _USERINFO.match(url.strip()) is not None


def shown_url(url: str) -> str:
    """URL as it may be printed: any user:password@ part replaced by ***@, and a preview's token
    (?wsgi-shim-preview=...), a secret too, by [token]."""
    import re

    url = re.sub(r"(wsgi-shim-preview=)[^&#]*", r"\1[token]", url.strip())
    m = _USERINFO.match(url)
    if m is None:
        return url
    head = m.group(0)
    return (head[:head.index("//") + 2] if "//" in head else "") + "***@" + url[m.end():]


def check_url(url: str) -> str:
    """Only http(s) URLs with a host and without credentials: `file:` and the like would read
    local files, not the site."""
    if has_credentials(url):
        raise BadURL(f"--url {shown_url(url)!r} {CREDENTIALS_REFUSED}")
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
    """GET an http(s) URL; the body read is at most READ_LIMIT bytes. Raises BadURL for any other
    URL, OSError when it cannot be reached."""
    import http.client  # with ssl, tens of ms: only for the commands that ask over HTTP
    import urllib.error
    import urllib.request

    request = urllib.request.Request(check_url(url), headers={"User-Agent": f"wsgi-shim/{__version__}"})
    # Cookies kept across redirects: the preview's printed URL logs in by a redirect that sets one.
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read(READ_LIMIT)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read(READ_LIMIT)
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
             + (f" (error id {record['error_id']})" if record.get("error_id") else "")
             + (" in the preview (wsgi-shim serve), not under Passenger" if record.get("preview") else "")]
    for p in record.get("problems", []):
        lines.append(Problem.from_dict(p).as_text())
    return "\n".join(lines)


@dataclass
class Restarted:
    """The outcome of waiting for a new app process: the start it recorded and how it answered,
    or (after a timeout) what the URL serves, a start still importing, and the last start before
    the restart."""

    waited: float
    start: dict | None = None
    url: Probe | None = None
    previous: dict | None = None
    failing: str | None = None      # the new process answers, but fails: what it answered
    importing: dict | None = None   # a new process that began its start and has not finished
    answers: list[str] = field(default_factory=list)
    site: Site | None = None        # for the commands the report prints

    @property
    def ok(self) -> bool:
        """A new process serves the app or the maintenance page, and did not fail a request."""
        return self.start is not None and self.start.get("state") in ("app", "maintenance") and not self.failing

    def report(self) -> str:
        """As text, for the terminal: the new start and its answers, or why none was seen."""
        if self.start is not None:
            lines = ["restarted: " + describe_start(self.start)]
            lines += [f"  {a}" for a in self.answers]
            if self.failing:
                lines.append("but it is failing: " + self.failing)
            return "\n".join(lines)
        lines = [f"no new process started within {self.waited:g} s."
                 + ("" if self.url else " No request reached the site: pass --url so wsgi-shim can make one.")]
        if self.importing:
            lines.append(describe_importing(self.importing, self.site))
        if self.url:
            lines.append(self.url.describe())
        if self.previous:
            lines.append("last start (before this restart): " + describe_start(self.previous))
        return "\n".join(lines)


def describe_importing(record: dict, site: Site | None = None) -> str:
    """A start that began and has not finished, said with the web server's time and our estimate."""
    ago = time.time() - float(record.get("epoch", 0) or 0)
    estimate = f" ({ago:.0f} s ago by this machine's clock)" if 0 <= ago < 86400 else ""
    return (f"pid {record.get('pid')} has been importing the app since {record.get('time')}{estimate} and "
            "has not finished: an import that waits (a database or network call without a timeout?). "
            "Passenger's start timeout (90 s by default) kills it, and visitors get Passenger's generic "
            f"page; the app log shows where it waits ({advice.command('logs', site.site if site else None)}).")


ANSWER_CHECKS = 3  # requests to the new process before calling it healthy
ANSWER_SECONDS = 5.0  # how long a bad answer no log entry explains must last to count


def wait_for_new_start(starts: Path, before: float, wait: float, url: str | None,
                       stamp: float | None = None, tail=None, site: Site | None = None) -> Restarted:
    """Wait until a process that began after the touch (restart.txt's mtime STAMP) records its
    start, requesting URL meanwhile (Passenger restarts on a request); then read how it answers:
    a 5xx, a 400 to the site's own host, or a request error it logged (TAIL: the app log from
    before the touch) makes it failing. Raises BadURL before waiting for a URL that is not http(s)."""
    from shim.ops import watch

    if url:
        check_url(url)
    if stamp is None:
        stamp = before
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if url:
            try:
                http_get(url, timeout=max(1.0, deadline - time.monotonic()))
            except OSError:
                pass
        new = watch.new_starts(starts, stamp, before)
        if new:
            result = Restarted(wait, start=new[-1], site=site)
            _read_answers(result, url, {r.get("pid") for r in new}, tail, starts, stamp, before)
            return result
        time.sleep(0.5)
    old = records.read_starts(starts, limit=1)
    begun = watch.begun_starts(starts, stamp, before)
    return Restarted(wait, url=ask(url) if url else None, previous=old[-1] if old else None,
                     importing=begun[-1] if begun else None, site=site)


def _read_answers(result: Restarted, url: str | None, pids: set, tail, starts: Path, stamp: float,
                  before: float) -> None:
    """How the new processes answer: a request error one of them logged makes them failing at
    once (the log names the pid); a bad HTTP answer alone (5xx, 400) may still come from an old
    process Passenger has not replaced yet, so it counts when it persists for ANSWER_SECONDS."""
    from shim.ops import watch

    if result.start.get("state") != "app":
        return
    deadline = time.monotonic() + ANSWER_SECONDS
    asked, bad = 0, None
    while True:
        if url:
            seen = ask(url)
            asked += 1
            result.answers = (result.answers + [seen.describe()])[-ANSWER_CHECKS:]
            bad = _failing_answer(seen) if seen.status is not None and (seen.status >= 500 or seen.status == 400) \
                else None
        errors = []
        if tail is not None:
            pids |= {r.get("pid") for r in watch.new_starts(starts, stamp, before)}
            errors = watch.request_errors(tail.entries(), pids)
        if errors:
            newest = watch.describe_error(errors[-1], result.site.site if result.site else None)
            result.failing = (bad + "\n" if bad else "") + \
                f"its requests failed ({len(errors)} logged); the newest, {newest}"
            return
        if not url or (bad is None and asked >= ANSWER_CHECKS):
            return
        if time.monotonic() >= deadline:
            result.failing = bad
            return
        time.sleep(0.3)


def _failing_answer(seen: Probe) -> str:
    if seen.status == 400:
        return (f"{seen.url} answers 400 Bad Request: the app refuses its own host name (a host check such as "
                "Django's ALLOWED_HOSTS or Flask's TRUSTED_HOSTS), so every visitor gets 400.")
    return f"{seen.url} answers {seen.status} ({seen.serving})."


# ---- status --------------------------------------------------------------------------------


def classify_response(status: int, headers: dict[str, str]) -> str:
    kind = {k.lower(): v for k, v in headers.items()}.get("x-wsgi-shim", "")
    if kind in ("maintenance", "error", "app-error", "preview-locked"):
        return kind  # preview-locked: a preview's 403 to a request without its cookie
    if status >= 500:
        return "server-error"  # e.g. Passenger's own "We're sorry" page
    return "app"


