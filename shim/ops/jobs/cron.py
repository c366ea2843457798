"""`wsgi-shim cron SITE`: the site's [jobs] (and its alert) as one marked block in the user's
crontab, through the real `crontab -l` / `crontab -`.

    # >>> wsgi-shim /home/me/mysite: managed by `wsgi-shim cron`; edit [jobs] in config.toml
    0 3 * * * '/home/me/mysite/venv/bin/wsgi-shim' run '/home/me/mysite' --job clearsessions >/dev/null 2>&1
    */5 * * * * '/home/me/mysite/venv/bin/wsgi-shim' alert '/home/me/mysite' >/dev/null 2>&1
    # <<< wsgi-shim /home/me/mysite

Every other byte of the crontab is kept as it was; installing the same block again writes
nothing. Output goes nowhere because `run` keeps it in the app log (a local mail of it would
reach no one on a shared host).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

from shim.ops.jobs import schedule
from shim.ops.jobs.run import check_user, site_config
from shim.runtime.layout import Site

ALERT_SCHEDULE = "*/5 * * * *"  # how often new failures are looked for; mails stay one per interval


class CronError(Exception):
    """A message for the user: the crontab could not be read or written, or a job is wrong."""


def markers(site: Site) -> tuple[bytes, bytes]:
    name = str(site.site)
    return (f"# >>> wsgi-shim {name}: managed by `wsgi-shim cron`; edit [jobs] in config.toml\n".encode(),
            f"# <<< wsgi-shim {name}\n".encode())


def _cron_word(text: str) -> str:
    """A shell word for a crontab line: % ends a cron command unless escaped."""
    if "\n" in text or "\r" in text:
        raise CronError(f"{text!r} holds a line break, which a crontab line cannot carry.")
    return shlex.quote(text).replace("%", "\\%")


def block(site: Site) -> bytes:
    """The site's block (empty when it has neither jobs nor alerts). Raises CronError."""
    cfg = site_config(site)
    shim = _cron_word(str(cfg.venv / "bin" / "wsgi-shim"))
    target = _cron_word(str(site.site))
    approot = "" if site.approot_name == "www-approot" else f" -a {_cron_word(site.approot_name)}"
    lines = []
    for name, job in sorted(cfg.jobs.items()):
        try:
            sched = schedule.parse(job["schedule"])
        except schedule.ScheduleError as exc:
            raise CronError(f"[jobs.{name}] schedule: {exc}. Nothing was changed.") from None
        lines.append(f"{sched.text} {shim} run {target}{approot} --job {name} >/dev/null 2>&1\n")
    if cfg.alerts:
        lines.append(f"{ALERT_SCHEDULE} {shim} alert {target}{approot} >/dev/null 2>&1\n")
    if not lines:
        return b""
    begin, end = markers(site)
    return begin + "".join(lines).encode() + end


def read_crontab() -> bytes:
    crontab = shutil.which("crontab")
    if crontab is None:
        raise CronError("there is no crontab program here (Debian: apt-get install cron); ask the host's "
                        "administrators how scheduled jobs are run.")
    proc = subprocess.run([crontab, "-l"], capture_output=True)
    if proc.returncode == 0:
        return proc.stdout
    if b"no crontab for" in proc.stderr:
        return b""
    raise CronError(f"crontab -l failed: {proc.stderr.decode(errors='replace').strip()} (is cron allowed for "
                    "you? see /etc/cron.allow and /etc/cron.deny)")


def write_crontab(data: bytes) -> None:
    proc = subprocess.run([shutil.which("crontab") or "crontab", "-"], input=data, capture_output=True)
    if proc.returncode != 0:
        raise CronError(f"crontab - refused the new crontab: {proc.stderr.decode(errors='replace').strip()}; "
                        "your crontab is unchanged.")


def replace_block(current: bytes, site: Site, new_block: bytes) -> bytes:
    """current with the site's block replaced by new_block (removed when empty; appended when
    there was none); all other bytes as they were."""
    begin, end = markers(site)
    start = current.find(begin)
    if start >= 0:
        stop = current.find(end, start)
        if stop < 0:
            raise CronError(f"the crontab has the start of the block of {site.site} but not its end line "
                            f"({end.decode().strip()!r}): fix it by hand with crontab -e.")
        return current[:start] + new_block + current[stop + len(end):]
    if not new_block:
        return current
    if current and not current.endswith(b"\n"):
        current += b"\n"
    return current + new_block


def apply(site: Site, show: bool = False, remove: bool = False) -> str:
    """Install (or with remove take out) the site's block; with show, only say what it would be."""
    cfg = site_config(site)
    new_block = b"" if remove else block(site)
    if show:
        return new_block.decode().rstrip("\n") or f"{cfg.file} has no [jobs] and no [alerts]: no block to install."
    check_user(cfg, "install its jobs in the crontab")
    current = read_crontab()
    updated = replace_block(current, site, new_block)
    if updated == current:
        if remove or not new_block:
            return f"No block of {site.site} in your crontab; nothing to remove."
        return f"Your crontab already holds this block for {site.site}; nothing changed."
    write_crontab(updated)
    if not new_block:
        return f"Removed the block of {site.site} from your crontab." + (
            "" if remove else f" ({cfg.file} has no [jobs] and no [alerts].)")
    count = len(cfg.jobs)
    return (f"Installed {count} job{'s' if count != 1 else ''}" + (" and the alert check" if cfg.alerts else "")
            + f" for {site.site} in your crontab (crontab -l shows it; wsgi-shim status shows each job's "
            "last run).")
