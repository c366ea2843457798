"""Start records: one JSON line per app process start in logs/starts.jsonl.

Written by get_app() in every process Passenger starts; read by `wsgi-shim check`, `status`,
`restart --wait` and deploys to learn what a real start saw.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from shim.runtime.permissions import create_private_dir, readable_by_others
from shim.runtime.problems import Problem


STARTING = "starting"  # the record a process writes when its start *begins*
# starts.jsonl -> starts.jsonl.1 when it would pass this: a site restarted every minute for
# years (or a crash loop) keeps about two files of records, not a file that grows without end.
MAX_BYTES = 1_048_576


def restart_stamp(restart_txt: Path) -> float | None:
    """restart.txt's mtime as this process sees it: which restart a start belongs to, decided on
    the file's own clock (the access host's), never by comparing two machines' clocks."""
    try:
        return os.stat(restart_txt).st_mtime
    except OSError:
        return None


def backup_of(starts_path: Path) -> Path:
    return starts_path.with_name(starts_path.name + ".1")


def record_start(starts_path: Path, state: str, problems: list[Problem], facts: dict[str, object],
                 max_bytes: int = MAX_BYTES) -> None:
    """Append one JSON line per process start (STARTING when it begins, then its outcome),
    rotating the file first when it would pass ``max_bytes``. Never raises: the site must start
    regardless."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "epoch": time.time(),
        "pid": os.getpid(),
        "state": state,
        "problems": [{k: v for k, v in p.as_dict().items() if k != "detail"} for p in problems],
        **facts,
    }
    _append(starts_path, record, max_bytes)


def _append(starts_path: Path, record: dict, max_bytes: int) -> None:
    try:
        if not starts_path.parent.exists():
            create_private_dir(starts_path.parent)
        data = (json.dumps(record) + "\n").encode()
        fd = _open_locked(starts_path)
        if fd is None:
            return
        try:
            if max_bytes and os.fstat(fd).st_size + len(data) > max_bytes:
                fd = _rotate(starts_path, fd)
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass


def _open_locked(starts_path: Path) -> int | None:
    """The start records open for appending and locked (against another process rotating them),
    or None when the path is not a regular file."""
    import fcntl

    # O_NONBLOCK + a regular file only: a FIFO here must not hang every start.
    fd = os.open(starts_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    st = os.fstat(fd)
    # Only a regular file of the site's own: another user's file (a link to it, or one left in a
    # directory they could write) would let them read and fake the records.
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        return None
    if stat.S_IMODE(st.st_mode) & 0o077 and readable_by_others(st):
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)  # reported once as log-exposed
    os.set_blocking(fd, True)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _rotate(starts_path: Path, fd: int) -> int:
    """starts.jsonl -> starts.jsonl.1 (unless another process did it meanwhile); the new file's fd."""
    st = os.fstat(fd)
    try:
        current = os.stat(starts_path)
        if (current.st_dev, current.st_ino) == (st.st_dev, st.st_ino):
            os.replace(starts_path, backup_of(starts_path))
    except FileNotFoundError:
        pass
    os.close(fd)
    new = _open_locked(starts_path)
    if new is None:
        raise OSError(f"{starts_path} is not a regular file")
    return new


def read_all(starts_path: Path, limit: int = 1000) -> list[dict]:
    """The last LIMIT records (begun and finished starts) across the file and its rotated copy,
    oldest first; unreadable or torn lines are skipped."""
    from shim.runtime.files import read_tail

    lines: list[bytes] = []
    for path in (starts_path, backup_of(starts_path)):  # the newest first, then the rotated file
        if len(lines) >= limit:
            break
        try:  # never blocks on a FIFO, never reads more than the tail
            lines = [line for line in read_tail(path, 256 * 1024).split(b"\n") if line.strip()] + lines
        except OSError:
            if path == starts_path:
                return []
    from shim.runtime.files import json_lines

    return json_lines(b"\n".join(lines))


def read_starts(starts_path: Path, limit: int = 50) -> list[dict]:
    """The most recent *finished* starts (what each process served), oldest first."""
    return [r for r in read_all(starts_path, max(limit * 2, 1000)) if r.get("state") != STARTING][-limit:]


def unfinished(records: list[dict]) -> list[dict]:
    """Begun starts (in RECORDS, as read_all gives them) that have no outcome yet and began after
    the last finished start: processes still importing the app, or killed while they did."""
    done = {r.get("pid") for r in records if r.get("state") != STARTING}
    last_done = max((i for i, r in enumerate(records) if r.get("state") != STARTING), default=-1)
    return [r for r in records[last_done + 1:] if r.get("state") == STARTING and r.get("pid") not in done]
