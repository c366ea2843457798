"""Job run records: one JSON line per `wsgi-shim run --job NAME` in logs/jobs.jsonl.

Read by `status` (each job's last run), `check` (failed or overdue jobs) and `alert` (failed
jobs since its last mail). Bounded: past MAX_BYTES the file is rewritten with its newest half.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path

from shim.runtime.layout import JOBS_FILE, beside_log

MAX_BYTES = 256 * 1024  # about 1500 runs: months of a few daily jobs


def jobs_path(log: Path) -> Path:
    return beside_log(log, JOBS_FILE)


def append(log: Path, record: dict) -> None:
    """Add one run's record; never raises (a full disk must not change the run's exit status)."""
    path = jobs_path(log)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return  # a FIFO or device: never written to (check's log-not-file names such files)
        os.set_blocking(fd, True)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (json.dumps(record) + "\n").encode())
        if os.fstat(fd).st_size > MAX_BYTES:
            _shrink(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _shrink(fd: int) -> None:
    """Keep the newest half, in place (the lock is held; readers may see a short file)."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    keep = data[-MAX_BYTES // 2:]
    keep = keep[keep.find(b"\n") + 1:]
    os.ftruncate(fd, 0)
    os.write(fd, keep)


def read(log: Path) -> list[dict]:
    """Every record, oldest first; torn or foreign lines are skipped. Never blocks or raises."""
    from shim.runtime.files import json_lines, read_tail

    try:
        data = read_tail(jobs_path(log), MAX_BYTES * 2)
    except OSError:
        return []
    return json_lines(data, "job")


def last_runs(log: Path) -> dict[str, dict]:
    """Each job's newest record."""
    return {r["job"]: r for r in read(log)}
