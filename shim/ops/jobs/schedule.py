"""Cron schedules as cron(8) reads them: five fields (minute hour day-of-month month
day-of-week) with *, ranges, steps, lists and names, or one of the @ shortcuts.

    sched = parse("*/15 8-18 * * mon-fri")   # raises ScheduleError saying what is wrong
    sched.previous(now)                      # the last tick at or before now (a datetime)

Used by `wsgi-shim check` (syntax, overdue jobs) and `wsgi-shim cron` (what is installed).
"""

from __future__ import annotations

from datetime import datetime, timedelta

SHORTCUTS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
             "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
             "@hourly": "0 * * * *"}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# name, lowest, highest, names (index 0 = lowest)
FIELDS = [("minute", 0, 59, None), ("hour", 0, 23, None), ("day of month", 1, 31, None),
          ("month", 1, 12, MONTHS), ("day of week", 0, 7, DAYS)]
EXAMPLE = 'e.g. "0 3 * * *" (03:00 every day), "*/15 * * * *" (every 15 minutes) or "@daily"'


class ScheduleError(ValueError):
    """What is wrong with a schedule, in words for the user."""


class Schedule:
    def __init__(self, text: str, fields: list[set[int]], dom_any: bool, dow_any: bool) -> None:
        self.text = text
        self.minutes, self.hours, self.days, self.months, self.weekdays = fields
        self.dom_any, self.dow_any = dom_any, dow_any

    def day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        # cron(8): when both day fields are restricted, either one matching is enough
        if self.dom_any or self.dow_any:
            return dom and dow
        return dom or dow

    def previous(self, now: datetime) -> datetime | None:
        """The latest tick at or before now (local time), looking back at most about 5 years."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for back in range(366 * 5):
            d = day - timedelta(days=back)
            if not self.day_matches(d):
                continue
            for hour in sorted(self.hours, reverse=True):
                for minute in sorted(self.minutes, reverse=True):
                    tick = d.replace(hour=hour, minute=minute)
                    if tick <= now:
                        return tick
        return None  # e.g. February 30th: never


def _value(text: str, field: int) -> int:
    name, low, high, names = FIELDS[field]
    if names and text.lower()[:3] in names and len(text) == 3:
        return names.index(text.lower()) + (low if field == 3 else 0)
    if not text.isdigit():
        raise ScheduleError(f"{text!r} is not a number for the {name} field ({low}-{high})")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"{value} is out of range for the {name} field ({low}-{high})")
    return value


def _field(text: str, field: int) -> set[int]:
    name, low, high, _ = FIELDS[field]
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"step {step_text!r} in the {name} field must be a whole number of 1 or more")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, field), _value(b, field)
            if first > last:
                raise ScheduleError(f"range {base!r} in the {name} field runs backwards")
        elif base:
            first = _value(base, field)
            last = high if step_text else first
        else:
            raise ScheduleError(f"the {name} field has an empty entry in {text!r}")
        values.update(range(first, last + 1, step))
    if field == 4 and 7 in values:  # 7 is Sunday too
        values = (values - {7}) | {0}
    return values


def parse(text: str) -> Schedule:
    """The schedule, or ScheduleError naming the field that is wrong."""
    spec = SHORTCUTS.get(text.strip().lower(), text.strip())
    if spec.startswith("@"):
        raise ScheduleError(f"{text!r} is not a schedule wsgi-shim installs (known: {', '.join(SHORTCUTS)}); "
                            "@reboot is not supported: a shared host's reboot is not the site's")
    parts = spec.split()
    if len(parts) != 5:
        raise ScheduleError(f"{text!r} has {len(parts)} field{'s' if len(parts) != 1 else ''}, not 5 "
                            "(minute hour day-of-month month day-of-week)")
    fields = [_field(part, i) for i, part in enumerate(parts)]
    return Schedule(text.strip(), fields, parts[2] == "*", parts[4] == "*")


def period_seconds(sched: Schedule, now: datetime) -> float:
    """How long between the two ticks before now: what 'overdue' is measured against."""
    last = sched.previous(now)
    if last is None:
        return 0.0
    before = sched.previous(last - timedelta(minutes=1))
    return (last - before).total_seconds() if before else 0.0
