"""`wsgi-shim alert SITE`: one mail to [alerts] mail with what went wrong since the last alert.

What is new since its last run: failed starts (logs/starts.jsonl: visitors saw an error page),
request errors (counted per exception, the newest entry in full, from the app log) and failed
jobs (logs/jobs.jsonl). Nothing new: no mail. At most one mail per [alerts] interval (minutes):
what is found meanwhile waits for the next one. Everything in the mail is masked by the site's
redactor. Its state (what was reported up to when, and when it last mailed) is logs/alerts.json.
`wsgi-shim cron` runs it every few minutes when [alerts] is set.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

from shim.ops import logview
from shim.ops.jobs import records as job_records
from shim.ops.jobs.run import check_user, site_config
from shim.runtime import records
from shim.runtime.config import Config
from shim.runtime.layout import ALERTS_FILE, Site, beside_log
from shim.runtime.loader import site_redactor

SENDMAIL = "/usr/sbin/sendmail"
SMTP_TIMEOUT = 30


class AlertError(Exception):
    """A message for the user: the mail could not be sent (nothing is marked as reported)."""


class Report:
    def __init__(self) -> None:
        self.starts: list[dict] = []      # failed start records
        self.requests: list[dict] = []    # request error entries of the app log
        self.jobs: list[dict] = []        # failed job records

    def __bool__(self) -> bool:
        return bool(self.starts or self.requests or self.jobs)

    def summary(self) -> str:
        parts = [(len(self.requests), "request error"), (len(self.starts), "failed start"),
                 (len(self.jobs), "failed job")]
        return ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in parts if n)


def _state_path(cfg: Config) -> Path:
    return beside_log(cfg.logging.path, ALERTS_FILE)


def read_state(cfg: Config) -> dict:
    from shim.runtime.files import read_regular

    try:
        data = json.loads(read_regular(_state_path(cfg), 65536))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state(cfg: Config, state: dict) -> None:
    path = _state_path(cfg)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def collect(cfg: Config, since: float) -> Report:
    report = Report()
    report.starts = [r for r in records.read_starts(cfg.logging.starts_path, limit=10000)
                     if r.get("state") == "error" and float(r.get("epoch", 0)) > since]
    try:
        report.requests = [e for e in logview.read_entries(cfg.logging.path)
                           if e["source"] == "shim.request" and logview.is_error(e)
                           and logview.entry_epoch(e) > since]
    except OSError:
        pass
    report.jobs = [r for r in job_records.read(cfg.logging.path)
                   if r.get("exit") != 0 and float(r.get("epoch", 0)) > since]
    return report


def _kind(entry: dict) -> str:
    from shim.ops.status import _exception

    return (_exception(logview.entry_text(entry)).split(":")[0] or "error without a traceback")


def body(site: Site, report: Report, since: float) -> str:
    lines = [f"wsgi-shim alert for the site {site.site}",
             f"New since {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(since))}: {report.summary()}.", ""]
    if report.starts:
        last = report.starts[-1]
        lines += [f"Failed starts: {len(report.starts)} (visitors got the start-up error page). Newest, "
                  f"{last.get('time')}, error id {last.get('error_id', '-')}:"]
        lines += [f"  [{p.get('code')}] {p.get('what')}" for p in last.get("problems", [])] + [""]
    if report.requests:
        kinds = Counter(_kind(e) for e in report.requests)
        lines += [f"Request errors: {len(report.requests)}"]
        lines += [f"  {n} x {kind}" for kind, n in kinds.most_common()]
        lines += ["Newest in full:", logview.entry_text(report.requests[-1]), ""]
    if report.jobs:
        lines += [f"Failed jobs: {len(report.jobs)}"]
        for r in report.jobs[-10:]:
            how = "timed out" if r.get("timed_out") else f"exit {r.get('exit')}"
            lines.append(f"  {r.get('time')} job {r.get('job')}: {how} (run id {r.get('run_id')})")
        lines.append("")
    lines += [f"Details: wsgi-shim logs {site.site} --errors   (and wsgi-shim status {site.site})",
              "You get at most one such mail per [alerts] interval; nothing is sent when nothing is new."]
    return "\n".join(lines) + "\n"


def message(cfg: Config, site: Site, report: Report, since: float):
    import socket
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    from shim.runtime.redact import escape_controls

    redact = site_redactor(cfg)
    msg = EmailMessage()
    from shim.runtime.permissions import name_of_user

    # the account itself: cron sets LOGNAME but not always USER
    sender = cfg.alerts.get("sender") or f"{name_of_user(os.geteuid())}@{socket.getfqdn()}"
    msg["From"] = sender
    msg["To"] = cfg.alerts["mail"]
    msg["Subject"] = escape_controls(redact(f"[wsgi-shim] {site.site.name}: {report.summary()}"))
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid("wsgi-shim")
    msg.set_content(redact(body(site, report, since)))
    return msg


def send(cfg: Config, msg) -> str:
    """Send msg; returns how. Raises AlertError."""
    smtp = cfg.alerts.get("smtp", "")
    if not smtp and os.access(SENDMAIL, os.X_OK):
        import subprocess

        proc = subprocess.run([SENDMAIL, "-t", "-oi"], input=msg.as_bytes(), capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise AlertError(f"{SENDMAIL} failed (exit {proc.returncode}): "
                             f"{proc.stderr.decode(errors='replace').strip()[:300]}")
        return f"through {SENDMAIL}"
    host, _, port = (smtp or "localhost:25").rpartition(":")
    return _smtp(cfg, msg, host, int(port))


def _smtp(cfg: Config, msg, host: str, port: int) -> str:
    import smtplib
    import ssl

    try:
        with (smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
              if port == 465 else smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)) as server:
            server.ehlo()
            secure = port == 465
            if not secure and server.has_extn("starttls"):
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
                secure = True
            if cfg.alerts.get("login"):
                user, password = _login(cfg)
                if not secure and host not in ("localhost", "127.0.0.1", "::1"):
                    raise AlertError(f"{host}:{port} offers no STARTTLS: the login would cross the network "
                                     "unencrypted, so it is not sent. Use the server's TLS port (465 or 587).")
                server.login(user, password)
            server.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        text = site_redactor(cfg)(str(exc))  # a server may echo what it was sent
        raise AlertError(f"cannot send the alert mail through {host}:{port}: {text}") from None
    return f"through {host}:{port}"


def _login(cfg: Config) -> tuple[str, str]:
    name = cfg.alerts["login"]
    text = cfg.secret_contents().get(name)
    if not isinstance(text, str) or ":" not in text:
        raise AlertError(f"[alerts] login: the file of [secret_files] {name} must hold user:password on its "
                         "first line.")
    user, _, password = text.splitlines()[0].partition(":")
    return user, password


def alert(site: Site, dry_run: bool = False, now: float | None = None) -> str:
    """Look for what is new, mail it when due; returns what happened (one line, or the mail)."""
    cfg = site_config(site)
    if not cfg.alerts:
        raise AlertError(f"{cfg.file} has no [alerts] mail = \"...\": nobody to tell.")
    if not dry_run:
        check_user(cfg, "send its alerts")
    now = time.time() if now is None else now
    interval = cfg.alerts["interval"] * 60
    state = read_state(cfg)
    since = float(state.get("seen_until", now - interval))
    report = collect(cfg, since)
    if not report:
        if not dry_run:
            write_state(cfg, {**state, "seen_until": now})
        return "Nothing new since the last alert; no mail sent."
    last_mail = float(state.get("last_mail", 0))
    if now - last_mail < interval and not dry_run:
        due = time.strftime("%H:%M UTC", time.gmtime(last_mail + interval))
        return f"New: {report.summary()}; held back until {due} (one mail per {cfg.alerts['interval']} minutes)."
    msg = message(cfg, site, report, since)
    if dry_run:
        return msg.as_string()
    how = send(cfg, msg)
    write_state(cfg, {"seen_until": now, "last_mail": now})
    return f"Sent the alert mail ({report.summary()}) to {cfg.alerts['mail']} {how}."
