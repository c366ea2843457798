"""`wsgi-shim status`: what the site serves and what went wrong lately, as one result.

Errors come from the app log (request errors with their id, failed starts, ERROR records). Each
is told apart as current or earlier: an error is earlier when the site restarted after it and a
process has started since (its code may well be fixed), or, for a failed start, when a later
start served the app.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from dataclasses import asdict, dataclass, field

from shim.ops import control, logview
from shim.runtime import records
from shim.runtime.layout import Site

EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Failure)\b(: .*)?$|"
                            r"[A-Za-z_][\w.]*: .*$")
REQUEST_HEAD = re.compile(r"^error id [0-9a-f]+: ")
RECENT = 5
STUCK_AFTER = 15.0


@dataclass
class SeenError:
    """One error of the app log, as status shows it."""

    id: str          # the error id (on the visitor's page), "" for an ERROR log record without one
    time: str
    pid: int
    kind: str        # "request" | "start" | "log"
    summary: str     # one line: the request or the failed start, and the exception
    exception: str   # "KeyError: 'k'", "" when the entry has no traceback
    current: bool    # False: before the last restart (or a successful start since): maybe fixed
    text: str        # the whole entry, as `wsgi-shim logs --id` prints it


@dataclass
class Status:
    site: str
    maintenance: bool
    last_start: dict | None
    release: str | None = None
    commit: str | None = None
    restart_pending: bool = False
    restart_due: list[str] = field(default_factory=list)  # changed after the last start
    errors: list[SeenError] = field(default_factory=list)
    http: control.Probe | None = None
    importing: dict | None = None  # a start that began after the last finished one, not yet done
    jobs: list[dict] = field(default_factory=list)  # per [jobs.NAME]: name, schedule, last run record or None

    @property
    def serving(self) -> str | None:
        if self.http is not None and self.http.serving:
            return self.http.serving
        return (self.last_start or {}).get("state")

    @property
    def http_failure(self) -> str | None:
        """Why the URL's answer is not a healthy one (unreachable, timed out, 5xx, 400)."""
        if self.http is None:
            return None
        if self.http.status is None:
            return f"{self.http.url} could not be asked: {self.http.error}"
        if self.http.status >= 500 and self.http.serving != "maintenance":  # the 503 page is a state
            return f"{self.http.url} answers {self.http.status} ({self.http.serving})"
        if self.http.status == 400:
            return (f"{self.http.url} answers 400 Bad Request: the app refuses its own host name (a host check "
                    "such as Django's ALLOWED_HOSTS)")
        return None

    @property
    def ok(self) -> bool:
        if self.http_failure or (self.importing and self.http is None):
            return False
        return self.serving in ("app", "maintenance")

    def as_dict(self) -> dict:
        data = asdict(self)
        data["http"] = ({k: v for k, v in asdict(self.http).items() if v is not None}
                        if self.http is not None else None)
        return data


def _exception(text: str) -> str:
    if "Traceback (most recent call last)" not in text:
        return ""
    last = text.rstrip().splitlines()[-1].strip()
    return last if EXCEPTION_LINE.match(last) else ""


def seen_error(entry: dict, last: dict | None, touched: float) -> SeenError:
    text = logview.entry_text(entry)
    exception = _exception(text)
    message = entry["message"]
    if entry["source"] == "shim.request":
        kind, summary = "request", REQUEST_HEAD.sub("", message)
    elif message.startswith("process started"):
        problems = [ln.strip()[len("start-up problem "):] for ln in entry["lines"]
                    if ln.strip().startswith("start-up problem ")]
        kind, summary = "start", "start failed" + (f": {problems[0]}" if problems else "")
        if len(problems) > 1:
            summary += f" (and {len(problems) - 1} more)"
    else:
        kind, summary = "log", message
    if exception and exception.split(":")[0] not in summary:
        summary = summary.rstrip(".") + f": {exception}"
    epoch = logview.entry_epoch(entry)
    last_epoch = (last or {}).get("epoch", 0)
    earlier = epoch < touched <= last_epoch or (
        kind == "start" and (last or {}).get("state") in ("app", "maintenance") and last_epoch > epoch)
    return SeenError(entry["error_id"], entry["time"], entry["pid"], kind, summary, exception,
                     not earlier, text)


def _say_if_not_regular(starts_path: Path, say: Callable[[str], None]) -> None:
    """A start-records file that is a FIFO or device is skipped unread (it would block): say
    so, or "none recorded" reads as if the site had never started."""
    import stat

    from shim.runtime.files import kind_of
    from shim.runtime.redact import escape_controls

    try:
        mode = os.stat(starts_path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        say(f"note: {escape_controls(str(starts_path))} is {kind_of(mode)}, not a regular file, so no "
            f"process start is recorded there. Remove it (rm {escape_controls(str(starts_path))}); the "
            "next start creates it again.")


def _restart_due(site: Site) -> list[str]:
    """What changed after the running process started (shim/ops/freshness.py), if anything."""
    from shim.ops.freshness import restart_due
    from shim.runtime.config import load_config

    cfg, _ = load_config(site.approot)
    due = restart_due(site, cfg) if cfg is not None else None
    return [str(p) for p in due[1]] if due else []


def site_status(site: Site, url: str | None = None, say: Callable[[str], None] = lambda m: None) -> Status:
    """Everything `wsgi-shim status` shows. Raises control.BadURL for a URL that is not http(s)."""
    if url:
        control.check_url(url)
    from shim.ops.deploy.listing import current_commit, recover_unfinished

    recover_unfinished(site, say)
    logging_cfg = control.site_logging(site)
    _say_if_not_regular(logging_cfg.starts_path, say)
    every = records.read_all(logging_cfg.starts_path)
    starts = [r for r in every if r.get("state") != records.STARTING]
    last = starts[-1] if starts else None
    try:
        # ctime: when restart.txt was last touched, to the nanosecond; its mtime is set to a
        # whole second (see control.touch_restart) and may lie just before the last start.
        touched = os.stat(site.restart_txt).st_ctime
    except OSError:
        touched = 0.0
    status = Status(str(site.site), site.maint_txt.exists(), last)
    status.release, status.commit = current_commit(site)
    status.restart_pending = bool(last and touched > last.get("epoch", 0))
    # A start under way for a moment is normal (Passenger adds processes under load); one that has
    # run this long is stuck. Estimated with this machine's clock: said so where it is shown.
    begun = [r for r in records.unfinished(every) if time.time() - float(r.get("epoch", 0) or 0) > STUCK_AFTER]
    status.importing = begun[-1] if begun else None
    status.restart_due = _restart_due(site)
    status.errors = [seen_error(e, last, touched) for e in logview.recent_errors(logging_cfg.path, RECENT)]
    status.jobs = job_runs(site)
    if url:
        status.http = control.ask(url)
    return status


def job_runs(site: Site) -> list[dict]:
    """Each job of config.toml with its last run (shim/ops/jobs/records.py), or None."""
    from shim.ops.jobs.records import last_runs
    from shim.runtime.config import load_config

    cfg, _ = load_config(site.approot)
    if cfg is None or not cfg.jobs:
        return []
    last = last_runs(cfg.logging.path)
    return [{"name": name, "schedule": job["schedule"], "last": last.get(name)}
            for name, job in sorted(cfg.jobs.items())]
