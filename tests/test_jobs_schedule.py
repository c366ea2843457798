"""Cron schedules as cron(8) reads them, and the bounded job records (no server needed)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from shim.ops.jobs import records, schedule

NOW = datetime(2026, 12, 6, 19, 58)  # a Sunday


@pytest.mark.parametrize("text, previous", [
    ("0 3 * * *", datetime(2026, 12, 6, 3, 0)),
    ("*/15 * * * *", datetime(2026, 12, 6, 19, 45)),
    ("@daily", datetime(2026, 12, 6, 0, 0)),
    ("@hourly", datetime(2026, 12, 6, 19, 0)),
    ("0 9 * * mon-fri", datetime(2026, 12, 4, 9, 0)),
    ("30 20 * * 7", datetime(2026, 11, 29, 20, 30)),        # 7 is Sunday too
    ("0 0 1,15 * fri", datetime(2026, 12, 4, 0, 0)),        # both day fields: either matches
    ("0 0 1 jan *", datetime(2026, 1, 1, 0, 0)),
    ("5-10/5 19 6 12 *", datetime(2026, 12, 6, 19, 10)),
])
def test_previous_tick(text, previous):
    assert schedule.parse(text).previous(NOW) == previous


@pytest.mark.parametrize("text, message", [
    ("61 * * * *", "61 is out of range for the minute field (0-59)"),
    ("* * *", "has 3 fields, not 5"),
    ("@reboot", "@reboot is not supported"),
    ("1-0 * * * *", "runs backwards"),
    ("*/0 * * * *", "step '0' in the minute field"),
    ("0 0 * foo *", "'foo' is not a number for the month field"),
    ("0 0 ,1 * *", "empty entry"),
])
def test_bad_schedules_say_what_is_wrong(text, message):
    with pytest.raises(schedule.ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")):
        schedule.parse(text)


def test_a_schedule_that_never_fires_has_no_previous_tick():
    assert schedule.parse("0 0 30 2 *").previous(NOW) is None


def test_job_records_stay_bounded_and_keep_the_newest(tmp_path):
    log = tmp_path / "app.log"
    for i in range(4000):
        records.append(log, {"job": "tick", "run_id": f"{i:08x}", "epoch": i, "exit": 0})
    path = records.jobs_path(log)
    assert path.stat().st_size <= records.MAX_BYTES
    with open(path, "a") as f:
        f.write('{"torn": \n')
    read = records.read(log)
    assert read[-1]["run_id"] == f"{3999:08x}" and len(read) > 1000
    assert records.last_runs(log) == {"tick": read[-1]}
    assert all(json.loads(line) for line in path.read_text().splitlines()[:-1])
