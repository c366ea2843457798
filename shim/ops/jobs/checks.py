"""What `wsgi-shim check` says about [jobs] and [alerts]: schedules that do not parse, programs
that are not there, jobs whose last run failed or that have not run when their schedule says
they should have, and alert settings that cannot work. All warnings: the site serves regardless.
"""

from __future__ import annotations

import os
import shlex
import time
from datetime import datetime

from shim.ops.jobs import records, schedule
from shim.runtime.config import Config
from shim.runtime.problems import Problem

GRACE = 10 * 60  # seconds a run may start late (a busy host, a long job before it) before it is overdue


def job_problems(cfg: Config, now: float | None = None) -> list[Problem]:
    problems: list[Problem] = []
    last_runs = records.last_runs(cfg.logging.path)
    now = time.time() if now is None else now
    for name, job in cfg.jobs.items():
        where = f"{cfg.file}, [jobs.{name}]"
        try:
            sched = schedule.parse(job["schedule"])
        except schedule.ScheduleError as exc:
            problems.append(Problem("job-schedule", f"[jobs.{name}] schedule: {exc}.", f"{where} schedule",
                                    f"Write a cron schedule, {schedule.EXAMPLE}.", severity="warning"))
            sched = None
        problems += _program_problems(cfg, name, job["command"], where)
        last = last_runs.get(name)
        if last is not None:
            problems += _last_run_problems(cfg, name, last, sched, now, where)
    problems += alert_problems(cfg)
    return problems


def _program_problems(cfg: Config, name: str, command: str, where: str) -> list[Problem]:
    import shutil

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return [Problem("job-command", f"[jobs.{name}] command cannot be split into words: {exc}.",
                        f"{where} command", "Close the quote, or escape it with a backslash.", severity="warning")]
    if not argv:
        return [Problem("job-command", f"[jobs.{name}] command is empty.", f"{where} command",
                        'Give the command, e.g. "python manage.py clearsessions".', severity="warning")]
    cwd = os.path.realpath(cfg.chdir_path)
    if "/" in argv[0]:
        found = os.access(os.path.join(cwd, argv[0]), os.X_OK)
    else:
        found = shutil.which(argv[0], path=f"{cfg.venv}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}") is not None
    if found:
        return []
    return [Problem("job-command", f"[jobs.{name}] runs {argv[0]!r}, which is not in {cfg.venv}/bin, on PATH "
                                   f"or (for a path) executable in {cwd}.", f"{where} command",
                    f"Install it into the site's venv ({cfg.venv}/bin/pip install ...), correct the name, or "
                    "give the path relative to [wsgi] chdir. Shell syntax (&&, >, |) needs "
                    "command = \"sh -c '...'\".", severity="warning")]


def _last_run_problems(cfg: Config, name: str, last: dict, sched, now: float, where: str) -> list[Problem]:
    when = last.get("time", "?")
    if last.get("exit") != 0:
        how = "timed out" if last.get("timed_out") else f"exited with status {last.get('exit')}"
        return [Problem("job-failed", f"The last run of job {name} ({when}) {how}.", where,
                        f"Read its output: wsgi-shim logs {cfg.app_root.parent} --errors (run id "
                        f"{last.get('run_id', '?')}); try it by hand with wsgi-shim run {cfg.app_root.parent} "
                        f"--job {name}.", severity="warning")]
    if sched is None:
        return []
    due = sched.previous(datetime.fromtimestamp(now - GRACE))
    if due is not None and float(last.get("epoch", 0)) < due.timestamp() - 60:
        return [Problem("job-overdue", f"Job {name} should have run at {due:%Y-%m-%d %H:%M} (schedule "
                                       f"{sched.text!r}), but its last run was {when}.", where,
                        f"Is the site's crontab block installed? crontab -l shows it; wsgi-shim cron "
                        f"{cfg.app_root.parent} installs it (as {cfg.passenger_user or 'the site user'}).",
                        severity="warning")]
    return []


def alert_problems(cfg: Config) -> list[Problem]:
    if not cfg.alerts:
        return []
    problems = []
    where = f"{cfg.file}, [alerts]"
    for address in [a.strip() for a in cfg.alerts["mail"].split(",")]:
        if address.count("@") != 1 or " " in address or not address.split("@")[1]:
            problems.append(Problem("alerts-bad", f"[alerts] mail {address!r} is not a mail address.",
                                    f"{where} mail", 'Write e.g. mail = "owner@example.org".', severity="warning"))
    smtp = cfg.alerts.get("smtp", "")
    if smtp:
        host, _, port = smtp.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(Problem("alerts-bad", f"[alerts] smtp {smtp!r} is not host:port.", f"{where} smtp",
                                    'Write e.g. smtp = "mail.example.org:587", or leave it out to use the '
                                    "local sendmail.", severity="warning"))
    login = cfg.alerts.get("login", "")
    if login and login not in cfg.secret_files:
        problems.append(Problem("alerts-bad", f"[alerts] login names {login!r}, which is not a [secret_files] "
                                              "entry.", f"{where} login",
                                "Add the entry to [secret_files], its file holding user:password on one line.",
                                severity="warning"))
    return problems
