"""Watching a restart: which app processes are new, and whether they answer or fail.

"Healthy" means it answered. After restart.txt is touched (a restart, a deploy's switch), this
tells:
- which start records belong to processes that began after the touch: each start records the
  restart.txt mtime it saw (its `restart_stamp`), so the decision is made on the file's own clock,
  never by comparing the access host's clock with the web server's;
- whether those processes fail: a request-error entry in the app log written by one of them (an
  exception the middleware caught, or the app's own 5xx page), read incrementally from where the
  log was when the watch began.
"""

from __future__ import annotations

import os
from pathlib import Path

from shim.ops import logview
from shim.runtime import records

STAMP_SLACK = 0.001  # restart.txt's mtime as stored may round the float we set


def new_starts(starts_path: Path, stamp: float, before: float) -> list[dict]:
    """Finished starts of processes that began after restart.txt got STAMP as its mtime. A record
    without a stamp (written by an older wsgi-shim) counts when its time is after BEFORE."""
    return [r for r in records.read_starts(starts_path) if is_new(r, stamp, before)]


def begun_starts(starts_path: Path, stamp: float, before: float) -> list[dict]:
    """Starts that began after the touch and have not finished: processes still importing."""
    return [r for r in records.unfinished(records.read_all(starts_path)) if is_new(r, stamp, before)]


def is_new(record: dict, stamp: float, before: float) -> bool:
    seen = record.get("restart_stamp")
    if isinstance(seen, (int, float)):
        return seen >= stamp - STAMP_SLACK
    return record.get("epoch", 0) > before


class LogTail:
    """The app log's entries appended since this object was made (a rotation starts the new
    file from its beginning). Each entry is written whole, in one write under the log's lock, so
    a read that ends with a newline ends with a complete entry; otherwise the entry being written
    is left for the next call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ident, self.offset = self._where()

    def _where(self) -> tuple[tuple[int, int] | None, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None, 0
        return (st.st_dev, st.st_ino), st.st_size

    def entries(self) -> list[dict]:
        """New complete entries since the last call. Never raises."""
        from shim.runtime.files import open_regular

        ident, size = self._where()
        if ident is None:
            return []
        if ident != self.ident or size < self.offset:
            self.ident, self.offset = ident, 0
        try:
            fd = open_regular(self.path)
            try:
                os.lseek(fd, self.offset, os.SEEK_SET)
                data = os.read(fd, 4 * 1024 * 1024)
            finally:
                os.close(fd)
        except OSError:
            return []
        if not data.endswith(b"\n"):  # an entry is being written: up to the last header before it
            head = max(data.rfind(b"\n2"), -1)
            data = data[:head + 1] if head >= 0 else b""
        self.offset += len(data)
        lines = data.decode("utf-8", "replace").split("\n")
        return list(logview.parse_entries(lines[:-1]))


def request_errors(entries: list[dict], pids: set[int]) -> list[dict]:
    """Request errors (raised, or the app's own 5xx) written by the processes PIDS."""
    return [e for e in entries if e["source"] == "shim.request" and logview.is_error(e) and e["pid"] in pids]


def describe_error(entry: dict, site: object = None) -> str:
    """The error id, the request line, the app's last frame and the exception: one short paragraph."""
    lines = [t.strip() for t in logview.entry_text(entry).splitlines()]
    shown = lines[:1]
    frames = [i for i, t in enumerate(lines) if t.startswith('File "')]
    if frames:
        shown += lines[frames[-1]:frames[-1] + 2]
    if len(lines) > 1 and lines[-1] not in shown:
        shown.append(lines[-1])  # the exception, or what the entry ends with
    body = "\n".join("    " + t for t in shown)
    from shim.runtime import advice

    return (f"error id {entry['error_id'] or '?'} from pid {entry['pid']}:\n{body}\n"
            f"    (in full: {advice.command('logs', site, '--id', entry['error_id'])})")
