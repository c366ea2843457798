"""Repeated identical request errors are counted, not logged in full each time.

    throttle = ErrorThrottle()
    full, error_id, summary = throttle.admit(kind_of_error(exc_info), new_id, time.time())

One per app process (shim.runtime.diagnostics). An error's kind is its exception type and the
innermost frame (file, line): the same bug hit again. The first FULL_PER_WINDOW of a kind in
WINDOW seconds are logged in full; the others get the id of the last full entry of that kind (so
the visitor's error id still leads the owner to the traceback) and are counted in a summary line
"N more like error id X", written when the count reaches 1, 2, 4, 8... and, exact, when the
window ends (at the next error of that kind, or when the process exits). A visitor who repeats a
failing request with large headers can no longer push the first, telling entry out of the log.
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

FULL_PER_WINDOW = 5
WINDOW = 60.0
MAX_KINDS = 256  # distinct kinds remembered per process (the oldest is forgotten first)


def kind_of_error(exc_info: tuple[Any, Any, TracebackType | None]) -> str:
    """Exception type and innermost frame, e.g. 'ValueError at /srv/app/views.py:12'."""
    etype, _, tb = exc_info
    where = "?"
    while tb is not None:
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return f"{getattr(etype, '__qualname__', etype)} at {where}"


class _Kind:
    __slots__ = ("full", "last_id", "reported", "start", "suppressed")

    def __init__(self, start: float, error_id: str) -> None:
        self.start = start
        self.full = 1
        self.last_id = error_id
        self.suppressed = 0
        self.reported = 0


class ErrorThrottle:
    """Decides, per error, whether it is logged in full; thread-safe, never raises."""

    def __init__(self, full: int = FULL_PER_WINDOW, window: float = WINDOW) -> None:
        self.full = full
        self.window = window
        self._kinds: dict[str, _Kind] = {}
        self._lock = threading.Lock()

    def admit(self, kind: str, error_id: str, now: float | None = None) -> tuple[bool, str, str | None]:
        """(log in full?, the error id to show, a summary line to write or None)."""
        now = time.time() if now is None else now
        with self._lock:
            k = self._kinds.get(kind)
            if k is None or now - k.start >= self.window:
                summary = _summary(kind, k, self.full) if k is not None and k.suppressed > k.reported else None
                self._kinds.pop(kind, None)
                self._kinds[kind] = _Kind(now, error_id)
                if len(self._kinds) > MAX_KINDS:
                    self._kinds.pop(next(iter(self._kinds)))
                return True, error_id, summary
            if k.full < self.full:
                k.full += 1
                k.last_id = error_id
                return True, error_id, None
            k.suppressed += 1
            if k.suppressed & (k.suppressed - 1) == 0:  # 1, 2, 4, 8...: a bounded number of lines
                k.reported = k.suppressed
                return False, k.last_id, _summary(kind, k, self.full)
            return False, k.last_id, None

    def pending(self) -> list[str]:
        """Summary lines of counts not written yet (at process exit)."""
        with self._lock:
            out = []
            for kind, k in self._kinds.items():
                if k.suppressed > k.reported:
                    k.reported = k.suppressed
                    out.append(_summary(kind, k, self.full))
            return out


def _summary(kind: str, k: _Kind, full: int) -> str:
    since = time.strftime("%H:%M:%SZ", time.gmtime(k.start))
    return (f"{k.suppressed} more like error id {k.last_id} ({kind}) since {since}, not logged in "
            f"full (only the first {full} of one kind a minute are)")
