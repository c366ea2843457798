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


def record_start(starts_path: Path, state: str, problems: list[Problem], facts: dict[str, str]) -> None:
    """Append one JSON line per process start. Never raises: the site must start regardless."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "epoch": time.time(),
        "pid": os.getpid(),
        "state": state,
        "problems": [{k: v for k, v in p.as_dict().items() if k != "detail"} for p in problems],
        **facts,
    }
    try:
        if not starts_path.parent.exists():
            create_private_dir(starts_path.parent)
        # O_NONBLOCK + a regular file only: a FIFO here must not hang every start.
        fd = os.open(starts_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            st = os.fstat(fd)
            # Only a regular file of the site's own: another user's file (a link to it, or one
            # left in a directory they could write) would let them read and fake the records.
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return
            if stat.S_IMODE(st.st_mode) & 0o077 and readable_by_others(st):
                os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)  # reported once as log-exposed
            os.set_blocking(fd, True)
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def read_starts(starts_path: Path, limit: int = 50) -> list[dict]:
    """The most recent start records, oldest first; unreadable or torn lines are skipped."""
    from shim.runtime.files import read_tail

    try:  # never blocks on a FIFO, never reads more than the tail
        lines = [line for line in read_tail(starts_path, 256 * 1024).split(b"\n") if line.strip()]
    except OSError:
        return []
    records = []
    for line in lines[-limit:]:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
