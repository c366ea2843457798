"""Where a slow import is stuck, written to the app log before Passenger gives up on it.

    watch = SlowStartWatch(applog, redact).start()
    try:
        import the app
    finally:
        watch.cancel()

An import that never returns (a database connect without a timeout, a lock) gives visitors
Passenger's generic page once its start timeout (90 s by default) kills the process, and no
line anywhere the owner can read. While the import runs, a timer thread writes the importing
thread's stack to the app log after AFTER seconds and then every EVERY seconds; cancel() stops it
the moment the import returns, so a healthy start costs one idle timer thread for its duration.
"""

from __future__ import annotations

import os
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shim.runtime.applog import AppLog
    from shim.runtime.redact import Redactor

AFTER = 20.0   # well before Passenger's default start timeout (90 s)
EVERY = 30.0


class SlowStartWatch:
    def __init__(self, applog: AppLog, redact: Redactor, after: float = AFTER, every: float = EVERY) -> None:
        self.applog = applog
        self.redact = redact
        self.after = after
        self.every = every
        self.thread_id = threading.get_ident()
        self.began = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SlowStartWatch:
        self._thread = threading.Thread(target=self._run, name="wsgi-shim-slow-start", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop the timer and wait for its thread to end: a daemon thread still alive at the
        interpreter's exit can cost the process its unflushed output (seen: a lost last write)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def _run(self) -> None:
        delay = self.after
        while not self._done.wait(delay):
            self.report()
            delay = self.every

    def report(self) -> None:
        """One WARNING entry: how long the import has run and the importing thread's stack."""
        import traceback

        frame = sys._current_frames().get(self.thread_id)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack: the thread ended)\n"
        seconds = time.monotonic() - self.began
        try:
            self.applog.entry("WARNING", "shim.start", self.redact(
                f"pid {os.getpid()} has been importing the app for {seconds:.0f} s and has not finished "
                "(Passenger's start timeout kills it at 90 s by default; visitors then get Passenger's "
                "generic error page). It is now here, most recent call last:\n" + stack))
        except Exception:  # noqa: BLE001 - a report must never disturb the start itself
            pass
