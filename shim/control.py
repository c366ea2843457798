"""Maintenance mode, restarts and start records: the files Passenger and the shim watch."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from shim.permissions import create_private_dir, create_private_file
from shim.problems import Problem

MAINT_NOTE = "wsgi-shim: this file switches the site into maintenance mode. Remove it to go live.\n"


def maint_on(maint_txt: Path) -> bool:
    """Returns False if maintenance mode was already on."""
    if maint_txt.exists():
        return False
    create_private_file(maint_txt, MAINT_NOTE)
    return True


def maint_off(maint_txt: Path) -> bool:
    try:
        maint_txt.unlink()
    except FileNotFoundError:
        return False
    return True


def touch_restart(restart_txt: Path) -> float:
    """Make Passenger restart the app on its next request; returns the new mtime.

    Passenger compares restart.txt's mtime at one-second resolution, so a second touch in the
    same second would be ignored: the new mtime is always at least one whole second later than
    the previous one. The file's permissions are kept; it is created if missing.
    """
    now = time.time()
    try:
        old = os.stat(restart_txt).st_mtime
    except FileNotFoundError:
        create_private_file(restart_txt)
        old = -1.0
    new = float(max(int(now), int(old) + 1))
    os.utime(restart_txt, (now, new))
    return new


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
        fd = os.open(starts_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def read_starts(starts_path: Path, limit: int = 50) -> list[dict]:
    """The most recent start records, oldest first; unreadable or torn lines are skipped."""
    try:
        with open(starts_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            lines = f.read().splitlines()
    except OSError:
        return []
    records = []
    for line in lines[-limit:]:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
