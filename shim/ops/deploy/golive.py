"""After the switch: watch the new release's processes and back out at their first failure.

The check before the switch sends the release its [check] requests; a failure that only
production traffic shows (another path, real data) is caught here. While a deploy waits (--wait
with --url, or the maintenance wait of --maint), every answer and every request error the app
log receives is read. The first failure from a process of the new release — its start record
names the release's directory as its working directory, whatever restart.txt said — ends the
wait: ReleaseFailing is raised, and the deploy's undo switches back to the previous release
(journal.settle) unless --no-rollback keeps it. An answer from a process of the old release
(still serving until Passenger restarts it) never counts against the new one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from shim.ops import control, watch
from shim.ops.deploy.store import DeployError
from shim.runtime import records
from shim.runtime.layout import Site

STEADY_RESPONSES = 30  # in a row, over at least STEADY_SECONDS: no process of the old state is left
STEADY_SECONDS = 1.0
RETOUCH_SECONDS = 2.0
SWALLOWED_SECONDS = 10.0  # no process of the watched release yet, while others answer


class ServeFailed(DeployError):
    """The site did not reach the state a step waited for (maintenance page, the app)."""


class ReleaseFailing(ServeFailed):
    """A process of the new release failed a request (or its start): the deploy backs out."""


@dataclass
class Watch:
    """What a deploy watches after its switch: the new release's processes and the app log."""

    site: Site
    release_dir: Path
    before: float
    tail: watch.LogTail
    starts: Path
    release: str
    seen_pids: set = field(default_factory=set)
    newest: dict | None = None  # the newest start of a process of the new release
    stamp: float | None = None  # only starts that saw this restart.txt mtime or a later one
    label: str = "the new release"

    @classmethod
    def begin(cls, site: Site, release: str, release_dir: Path, stamp: float | None = None,
              label: str = "the new release") -> Watch:
        """Call before the switch: the app log is read from here on."""
        logging_cfg = control.site_logging(site)
        return cls(site, Path(os.path.realpath(release_dir)), time.time(), watch.LogTail(logging_cfg.path),
                   logging_cfg.starts_path, release, stamp=stamp, label=label)

    def new_starts(self) -> list[dict]:
        """Finished starts of processes that run the release (after the touch STAMP, if given)."""
        inside = str(self.release_dir) + os.sep
        found = [r for r in records.read_starts(self.starts)
                 if isinstance(r.get("chdir"), str) and (r["chdir"] + os.sep).startswith(inside)
                 and (self.stamp is None or watch.is_new(r, self.stamp, self.before))]
        self.seen_pids |= {r.get("pid") for r in found}
        if found:
            self.newest = found[-1]
        return found

    def failure(self) -> str | None:
        """Why the new release fails, if it does: a start that served the error page, or a request
        error one of its processes logged."""
        new = self.new_starts()
        broken = [r for r in new if r.get("state") == "error"]
        if broken:
            return "its process serves the start-up error page:\n" + control.describe_start(broken[-1])
        errors = watch.request_errors(self.tail.entries(), self.seen_pids)
        if errors:
            return f"a process of {self.label} failed a request; {watch.describe_error(errors[0], self.site.site)}"
        return None

    def fail(self, why: str, rollback: bool) -> ReleaseFailing:
        then = ("the deploy backs out: the previous release is switched back and restarted." if rollback else
                "--no-rollback: the new release stays live.")
        return ReleaseFailing(f"release {self.release} is failing after the switch: {why}\n{then}")


def watch_live(w: Watch, timeout: float, url: str | None, rollback: bool, out) -> None:
    """Until the new release answers URL steadily (or, without URL, for TIMEOUT seconds of
    production traffic), raising ReleaseFailing at its first failure and ServeFailed when no
    process of it answered within TIMEOUT."""
    deadline = time.monotonic() + timeout
    streak, since, touched = 0, 0.0, time.monotonic()
    while time.monotonic() < deadline:
        seen = _ask(url, deadline) if url else None
        why = w.failure()
        if why:
            raise w.fail(why, rollback)
        now = time.monotonic()
        if seen == "app" and w.seen_pids:
            streak, since = streak + 1, since if streak else now
            if streak >= STEADY_RESPONSES and now - since >= STEADY_SECONDS:
                out.say("restarted: " + control.describe_start(w.newest).splitlines()[0])
                out.say(f"  {w.label} answers: {streak} requests in a row served by the app, "
                        f"no request error from its {_plural(len(w.seen_pids), 'process', 'processes')}")
                return
            time.sleep(0.03)
            continue
        streak = 0
        if now - touched >= (RETOUCH_SECONDS if w.seen_pids else SWALLOWED_SECONDS) and (
                seen == "maintenance" and w.seen_pids or seen in ("app", "app-error", "server-error")
                and not w.seen_pids):
            # A restart requested while Passenger still carried out the previous one can be
            # swallowed (seen under load: processes of the old state served on): touch again.
            control.touch_restart(w.site.restart_txt)
            touched = now
        time.sleep(0.2 if url else 1.0)
    if url or not w.seen_pids:
        raise ServeFailed(_not_served(w, url, timeout))
    out.say("restarted: " + control.describe_start(w.newest).splitlines()[0])
    out.say(f"  watched the app log for {timeout:g} s: {_plural(len(w.seen_pids), 'process', 'processes')} of "
            f"{w.label} served, no request error")


def wait_for_state(site: Site, stamp: float, before: float, timeout: float, url: str, want: str, out) -> None:
    """Wait until a process started after the touch that gave restart.txt the mtime STAMP records
    state WANT and URL answers with it steadily (STEADY_RESPONSES in a row).

    Passenger notices restart.txt only once per stat-throttle window and restarts on a request,
    so only a request answered by a process that started after the touch proves a state. And a
    restart requested while Passenger is still carrying out the previous one can be swallowed
    (seen with real Passenger: processes of the old state went on serving), so while the old
    state is still answered, restart.txt is touched again."""
    starts = control.starts_path(site)
    deadline = time.monotonic() + timeout
    record: dict | None = None
    streak, since, touched = 0, 0.0, time.monotonic()
    while time.monotonic() < deadline:
        seen = _ask(url, deadline)
        if record is None:
            record = _new_start(starts, stamp, before, want)
        now = time.monotonic()
        if seen == want and record is not None:
            streak, since = streak + 1, since if streak else now
            if streak >= STEADY_RESPONSES and now - since >= STEADY_SECONDS:
                out.say("  " + control.describe_start(record).splitlines()[0])
                return
            time.sleep(0.03)
            continue
        streak = 0
        if record is not None and now - touched >= RETOUCH_SECONDS:
            control.touch_restart(site.restart_txt)  # a process of the old state is still serving
            touched = now
        time.sleep(0.2)
    raise ServeFailed(f"{url} did not serve {want} steadily from new processes within {timeout:g} s.")


def _ask(url: str, deadline: float) -> str:
    try:
        status, headers, _ = control.http_get(url, timeout=max(1.0, deadline - time.monotonic()))
        return control.classify_response(status, headers)
    except OSError:
        return "unreachable"


def _new_start(starts: Path, stamp: float, before: float, want: str) -> dict | None:
    """The newest start after the touch in state WANT. A start record is written at the end of a
    process's start, so one that began before the touch may still record the old state after it
    (seen under load): such records are passed over (watch.new_starts tells them by the
    restart.txt mtime each start saw). An error page while waiting for the app fails at once."""
    new = watch.new_starts(starts, stamp, before)
    if want == "app" and new and new[-1].get("state") == "error":
        raise ServeFailed(f"the site's new process serves the error page, not {want}:\n"
                          + control.describe_start(new[-1]))
    wanted = [r for r in new if r.get("state") == want]
    return wanted[-1] if wanted else None


def _not_served(w: Watch, url: str | None, timeout: float) -> str:
    if not w.seen_pids:
        return (f"no new process started within {timeout:g} s (none of the new release)"
                + (f" ({url} was requested meanwhile)." if url else
                   "; no request reached the site (pass --url so wsgi-shim makes them)."))
    return f"{url} did not serve the app steadily from the new release within {timeout:g} s."


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
