"""`wsgi-shim logs SITE`: read the app log (and its rotated files) as the developer.

    wsgi-shim logs SITE                 the last 50 entries
    wsgi-shim logs SITE -n 200          the last 200
    wsgi-shim logs SITE --errors        only errors (request exceptions, failed starts, log errors)
    wsgi-shim logs SITE --since 2h      entries of the last 2 hours (also 30s, 10m, 1d, 1w or an
                                        ISO time such as 2026-11-24T09:30; without a zone it is
                                        local time)
    wsgi-shim logs SITE --id 3f9a1c2b7d the entry of that error id (from the 500 page)
    wsgi-shim logs SITE --follow        keep printing new entries (Ctrl-C to stop)

Reading and selecting only: shim/cli.py parses the flags and prints. Needs no special rights:
the log belongs to the site's user, who is the developer.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ENTRY = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \[(?P<pid>\d+)\] (?P<level>[A-Z]+) "
    r"(?P<source>\S*?): ?(?P<message>.*)$")
# Only the shim issues error ids, each at a fixed place: a request error starts with
# "error id X: GET ..." and a failed start ends its first line with "error id X". Anywhere else
# the text may be a visitor's (a path the app logs), which must not pass as a real error id.
ISSUED_ID = {"shim.request": re.compile(r"^error id ([0-9a-f]{6,32}):"),
             "shim": re.compile(r" error id ([0-9a-f]{6,32})$")}
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
DEFAULT_LINES = 50
POLL_SECONDS = 0.5


# -- reading --------------------------------------------------------------------------------

def log_files(log_path: Path) -> list[Path]:
    """The log and its rotated files, oldest first: app.log.3, app.log.2, app.log.1, app.log."""
    rotated = []
    try:
        for p in log_path.parent.iterdir():
            suffix = p.name[len(log_path.name) + 1:]
            if p.name.startswith(log_path.name + ".") and suffix.isdigit():
                rotated.append((int(suffix), p))
    except OSError:
        pass
    files = [p for _, p in sorted(rotated, reverse=True)]
    if log_path.exists():
        files.append(log_path)
    return files


def parse_entries(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Group log lines into entries: a header line plus its indented continuation lines."""
    from shim.runtime.redact import escape_controls

    current: dict[str, Any] | None = None
    for line in lines:
        # Whatever wrote the file, nothing raw reaches the terminal (ESC) or splits an entry.
        line = escape_controls(line.rstrip("\n"))
        m = ENTRY.match(line)
        if m:
            if current is not None:
                yield current
            current = _entry(m, line)
        elif current is not None:
            current["lines"].append(line)
        elif line.strip():  # text before any header (e.g. a truncated first entry)
            current = {"time": "", "pid": 0, "level": "", "source": "", "message": line,
                       "error_id": "", "lines": [line]}
    if current is not None:
        yield current


def _entry(m: re.Match[str], line: str) -> dict[str, Any]:
    message = m.group("message")
    issued = ISSUED_ID.get(m.group("source")) if m.group("level") in ERROR_LEVELS else None
    eid = issued.search(message) if issued else None
    return {"time": m.group("time"), "pid": int(m.group("pid")), "level": m.group("level"),
            "source": m.group("source"), "message": message,
            "error_id": eid.group(1) if eid else "", "lines": [line]}


def entry_text(entry: dict[str, Any]) -> str:
    return "\n".join(entry["lines"])


def entry_epoch(entry: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(entry["time"]).timestamp()
    except ValueError:
        return 0.0


MAX_LINE = 1024 * 1024  # longer lines are cut: a log line is never worth more memory


def open_log(path: Path) -> Any:
    """A log file for reading as text: a regular file only (a FIFO would block), split at \\n
    only (a CR written by an older wsgi-shim must not start a line). Raises OSError."""
    from shim.runtime.files import open_regular

    fd = open_regular(path)
    return open(fd, encoding="utf-8", errors="replace", newline="\n")


def bounded_lines(f: Any, limit: int = MAX_LINE) -> Iterator[str]:
    """Lines of f, each cut at `limit` characters (the rest of that line is skipped, so it can
    never be read as a line of its own)."""
    while True:
        line = f.readline(limit)
        if not line:
            return
        if len(line) >= limit and not line.endswith("\n"):
            while True:
                rest = f.readline(limit)
                if not rest or rest.endswith("\n"):
                    break
            line += " [line cut]\n"
        yield line


def read_entries(log_path: Path) -> Iterator[dict[str, Any]]:
    """All entries of the log and its rotated files, oldest first. Raises OSError."""
    for path in log_files(log_path):
        try:
            with open_log(path) as f:
                yield from parse_entries(bounded_lines(f))
        except FileNotFoundError:  # rotated away while we read
            continue


def is_error(entry: dict[str, Any]) -> bool:
    return entry["level"] in ERROR_LEVELS


def parse_since(spec: str, now: float | None = None) -> float:
    """'10m' / '2h' / '1d' / '1w' / '30s' or an ISO time -> epoch seconds. Raises ValueError."""
    spec = spec.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", spec)
    if m:
        factor = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return (time.time() if now is None else now) - float(m.group(1)) * factor
    try:
        when = datetime.fromisoformat(spec.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"--since {spec!r}: give a duration like 30s, 10m, 2h, 1d, 1w "
                         "or an ISO time like 2026-11-24T09:30") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as the developer typed it
    return when.timestamp()


def recent_errors(log_path: Path, limit: int) -> list[dict[str, Any]]:
    """The last `limit` error entries (newest last), for `wsgi-shim status`. Never raises."""
    found: deque[dict[str, Any]] = deque(maxlen=max(0, limit))
    try:
        for e in read_entries(Path(log_path)):
            if is_error(e):
                found.append(e)
    except OSError:
        return []
    return [_with_text(e) for e in found]


def find_error(log_path: Path, error_id: str) -> dict[str, Any] | None:
    """The entry carrying error id `error_id`, or None."""
    wanted = error_id.strip().lower()
    for e in read_entries(Path(log_path)):
        if e["error_id"] == wanted:
            return _with_text(e)
    return None


MIN_ID_PREFIX = 6  # of the 10 hex digits of an error id: what people copy by hand


class IdLookup:
    """Which error id `logs --id GIVEN` names: the id itself, or a unique prefix of MIN_ID_PREFIX
    or more characters (ids have 10: a shortened one must still find its entry)."""

    def __init__(self, given: str, ids: Iterable[str]) -> None:
        self.given = given.strip().lower()
        known = {i for i in ids if i}
        self.matches = [self.given] if self.given in known else sorted(
            i for i in known if len(self.given) >= MIN_ID_PREFIX and i.startswith(self.given))

    @property
    def resolved(self) -> str | None:
        return self.matches[0] if len(self.matches) == 1 else None

    @property
    def too_short(self) -> bool:
        return not self.matches and len(self.given) < MIN_ID_PREFIX


def lookup_id(log_path: Path, starts: list[dict[str, Any]], given: str) -> IdLookup:
    """GIVEN resolved against the error ids of the app log (and its rotated files) and of the
    start records STARTS; an unreadable log counts as one without ids."""
    ids = [r.get("error_id", "") for r in starts]
    try:
        ids += [e["error_id"] for e in read_entries(Path(log_path))]
    except OSError:
        pass
    return IdLookup(given, ids)


def _with_text(e: dict[str, Any]) -> dict[str, Any]:
    """An entry plus its whole text, as printed."""
    return {**e, "text": entry_text(e)}


# -- selecting -----------------------------------------------------------------------------

def select(log_path: Path, errors_only: bool = False, since: float | None = None,
           limit: int | None = DEFAULT_LINES) -> list[dict[str, Any]]:
    """The last LIMIT entries (None: all) of the log and its rotated files, oldest first, only
    errors if ERRORS_ONLY, only those newer than SINCE (epoch seconds). Raises OSError."""
    selected: deque[dict[str, Any]] = deque(maxlen=limit if limit and limit > 0 else None)
    if limit == 0:
        return []
    for e in read_entries(log_path):
        if _wanted(e, errors_only, since):
            selected.append(e)
    return list(selected)


def _wanted(e: dict[str, Any], errors_only: bool, since: float | None) -> bool:
    if errors_only and not is_error(e):
        return False
    return since is None or entry_epoch(e) >= since


def follow(path: Path, errors_only: bool, out: Any, stop_after: float | None = None,
           stop: threading.Event | None = None) -> None:
    """Write entries appended from now on to OUT (a text stream) until interrupted (Ctrl-C),
    STOP_AFTER seconds or STOP is set; follows the log across rotations. A log that does not
    exist yet is read from its start once it appears."""
    f = None
    ident = None
    pending = ""  # a line still being written
    first = os.path.exists(path)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while (deadline is None or time.monotonic() < deadline) and not (stop and stop.is_set()):
            if f is None:
                try:
                    # kept open across polls, closed in finally
                    f = open_log(path)
                except FileNotFoundError:
                    time.sleep(POLL_SECONDS)
                    continue
                st = os.fstat(f.fileno())
                ident = (st.st_dev, st.st_ino)
                if first:  # what was there is already printed; a rotated-in file is read whole
                    f.seek(0, os.SEEK_END)
                    first = False
            chunk = f.read()
            if chunk:
                complete, _, pending = (pending + chunk).rpartition("\n")
                for e in parse_entries(complete.split("\n") if complete else []):
                    if _wanted(e, errors_only, None):
                        out.write(entry_text(e) + "\n")
                out.flush()
                continue
            try:
                st = os.stat(path)
                rotated = (st.st_dev, st.st_ino) != ident
            except FileNotFoundError:
                rotated = True
            if rotated:  # the rest of the old file was read above; the new one from its start
                f.close()
                f = None
                _show_rotated_since(path, ident, errors_only, out)
                continue
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        pass
    finally:
        if f is not None:
            f.close()


def _show_rotated_since(path: Path, ident: tuple[int, int] | None, errors_only: bool, out: Any) -> None:
    """After the file being followed was rotated: the whole of every rotated file newer than it
    (several rotations may happen within one poll), or, when it was deleted already because more
    rotations than there are backups happened, a line saying entries were skipped."""
    files = []  # (ident, open file) of the rotated files, oldest first; opened at once, so a
    for p in log_files(path)[:-1] if path.exists() else log_files(path):  # rename cannot confuse
        try:
            fh = open_log(p)
        except OSError:
            continue
        st = os.fstat(fh.fileno())
        files.append(((st.st_dev, st.st_ino), fh))
    try:
        idents = [i for i, _ in files]
        if ident in idents:
            newer = files[idents.index(ident) + 1:]
        else:
            newer = files
            out.write(f"(wsgi-shim logs: {path.name} rotated more times within {POLL_SECONDS} s than it keeps "
                      "backups; the entries of at least one rotated file were deleted before they could be "
                      "shown)\n")
        for _, fh in newer:
            for e in parse_entries(bounded_lines(fh)):
                if _wanted(e, errors_only, None):
                    out.write(entry_text(e) + "\n")
        out.flush()
    finally:
        for _, fh in files:
            fh.close()
