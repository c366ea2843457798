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

from shim.runtime.permissions import create_private_dir
from shim.runtime.problems import Problem


STARTING = "starting"  # the record a process writes when its start *begins*


def restart_stamp(restart_txt: Path) -> float | None:
    """restart.txt's mtime as this process sees it: which restart a start belongs to, decided on
    the file's own clock (the access host's), never by comparing two machines' clocks."""
    try:
        return os.stat(restart_txt).st_mtime
    except OSError:
        return None


def record_start(starts_path: Path, state: str, problems: list[Problem], facts: dict[str, object]) -> None:
    """Append one JSON line per process start (STARTING when it begins, then its outcome).
    Never raises: the site must start regardless."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "epoch": time.time(),
        "pid": os.getpid(),
        "state": state,
        "problems": [{k: v for k, v in p.as_dict().items() if k != "detail"} for p in problems],
        **facts,
    }
    _append(starts_path, record)


def _append(starts_path: Path, record: dict) -> None:
    try:
        if not starts_path.parent.exists():
            create_private_dir(starts_path.parent)
        # O_NONBLOCK + a regular file only: a FIFO here must not hang every start.
        fd = os.open(starts_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            os.set_blocking(fd, True)
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def read_all(starts_path: Path) -> list[dict]:
    """Every record in the file's tail (begun and finished starts), oldest first; unreadable or
    torn lines are skipped."""
    from shim.runtime.files import read_tail

    try:  # never blocks on a FIFO, never reads more than the tail
        lines = [line for line in read_tail(starts_path, 256 * 1024).split(b"\n") if line.strip()]
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_starts(starts_path: Path, limit: int = 50) -> list[dict]:
    """The most recent *finished* starts (what each process served), oldest first."""
    return [r for r in read_all(starts_path) if r.get("state") != STARTING][-limit:]


def unfinished(records: list[dict]) -> list[dict]:
    """Begun starts (in RECORDS, as read_all gives them) that have no outcome yet and began after
    the last finished start: processes still importing the app, or killed while they did."""
    done = {r.get("pid") for r in records if r.get("state") != STARTING}
    last_done = max((i for i, r in enumerate(records) if r.get("state") != STARTING), default=-1)
    return [r for r in records[last_done + 1:] if r.get("state") == STARTING and r.get("pid") not in done]
