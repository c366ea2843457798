"""The deploy journal: each step is written to SITE/releases/.journal.json (fsynced, renamed into
place) *before* it is taken, so whoever comes next knows exactly what may be half-done.

- SIGINT, SIGTERM and SIGHUP (Ctrl-C, a CI timeout, a dropped SSH session) raise Interrupted in
  the deploy, which undoes it from the journal and ends.
- After SIGKILL or a power cut the journal stays behind; the next deploy, rollback or status
  reads it, says what happened, and settles it: maintenance this deploy switched on is lifted,
  unfinished releases are removed, `current` stays on (or returns to) a checked release.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shim.ops import control, signals
from shim.ops.deploy import store, venvs
from shim.ops.deploy.store import DeployError
from shim.runtime import advice
from shim.runtime.layout import Site

JOURNAL = ".journal.json"


class Interrupted(KeyboardInterrupt):
    """SIGTERM/SIGHUP turned into what Ctrl-C raises, so one undo path serves all three."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Journal:
    op: str                          # "deploy" or "rollback"
    release: str                     # the release being made or gone back to
    previous: str | None             # what `current` named before
    pid: int = field(default_factory=os.getpid)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    step: str = "start"
    new_release: bool = True         # the release directory is this deploy's own (remove on undo)
    checked: bool = False            # the release passed the check (may become current)
    maint_set: bool = False          # this deploy switched maintenance on
    config_old: str | None = None    # --init: config.toml before and after
    config_new: str | None = None
    commit: str | None = None
    commands: list[str] = field(default_factory=list)  # release commands taken (they are not undone)


def path(site: Site) -> Path:
    return store.releases_dir(site) / JOURNAL


def write(site: Site, j: Journal) -> None:
    """Replace the journal atomically and durably (a torn journal would be worse than none)."""
    target = path(site)
    tmp = target.with_name(f"{JOURNAL}.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, json.dumps(asdict(j)).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:  # a signal (Interrupted) or a full disk half-way: no temporary file left
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dirfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def step(site: Site, j: Journal, name: str, **changes: object) -> None:
    """Record that step NAME is about to be taken (with what it will change)."""
    j.step = name
    for key, value in changes.items():
        setattr(j, key, value)
    write(site, j)


def read(site: Site) -> Journal | None:
    data = store.read_small(path(site), 1024 * 1024)
    if data is None:
        return None
    try:
        raw = json.loads(data)
        return Journal(**{k: v for k, v in raw.items() if k in Journal.__dataclass_fields__})
    except (ValueError, TypeError):
        return Journal(op="unknown", release="", previous=None, step="unreadable")


def clear(site: Site) -> None:
    try:
        os.unlink(path(site))
    except FileNotFoundError:
        pass


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted (as SIGINT raises KeyboardInterrupt) inside."""
    def handler(signum, frame):
        raise Interrupted(signum)

    with signals.handled(signals.TERMINATING, handler):
        yield


@contextmanager
def signals_held() -> Iterator[None]:
    """While undoing, a second signal must not stop the undo half-way."""
    with signals.handled((signal.SIGINT, *signals.TERMINATING), signal.SIG_IGN):
        yield


def settle(site: Site, j: Journal, say: Callable[[str], None], keep_checked: bool) -> str:
    """Bring the site to a safe state after deploy/rollback J stopped half-way.

    KEEP_CHECKED: a release already switched to (it had passed the check) stays current (after
    a kill: nothing about it is half-done); otherwise `current` goes back to J.previous (an undo).
    Returns which release is current afterwards, for the message.
    """
    current = _current_or_none(site)
    restart = False
    served = bool(j.release) and current == j.release
    if served and not (keep_checked and j.checked):
        store.switch(site, j.previous)
        if j.previous:
            store.record_live(site, j.previous, "undo", undone=j.release)
        say(f"current is back to {j.previous or 'nothing (no release before this deploy)'}.")
        current, restart = j.previous, True
    elif current == j.release and j.release:
        if j.config_new is not None and _read_text(site.config_toml) != j.config_new:
            _write_config(site, j.config_new)
        _ensure_recorded(site, j)
        say(f"{j.release} is live (it had passed the check before the switch).")
        restart = True
    _settle_config(site, j, current, say)
    if current is None:
        for message in venvs.restore_site_venv(site, j.release if j.new_release else None):
            say(message)
    else:
        venvs.drop_aside(site)
    if j.new_release and j.release and current != j.release and not served:
        store.remove_release(site, j.release)
        say(f"removed the unfinished release {j.release}.")
    elif j.new_release and served and current != j.release:
        # Processes Passenger started from it serve until they restart, from their cwd in it:
        # deleting it now would fail their requests (seen under load). A later prune removes it.
        say(f"kept {j.release} (it was live for a moment; its processes serve until Passenger restarts "
            "them); a later deploy prunes it.")
    for entry in store.remove_partials(site):
        say(f"removed the leftover {entry}.")
    if j.maint_set and control.maint_off(site.maint_txt):
        say("maintenance mode off again (this deploy had switched it on).")
        restart = True
    if restart:
        control.touch_restart(site.restart_txt)
    clear(site)
    return current or "nothing"


def _settle_config(site: Site, j: Journal, current: str | None, say: Callable[[str], None]) -> None:
    """--init: config.toml says chdir = "current" only while a release is current."""
    if j.config_old is None or current == j.release:
        return
    if _read_text(site.config_toml) == j.config_new:
        _write_config(site, j.config_old)
        say(f"{site.config_toml} restored (the --init change is undone).")


def _ensure_recorded(site: Site, j: Journal) -> None:
    seq = store.live_sequence(site)
    if not seq or seq[-1] != j.release:
        store.record_live(site, j.release, j.op, j.commit)


def _current_or_none(site: Site) -> str | None:
    try:
        return store.current_release(site)
    except DeployError:
        return None


def _read_text(p: Path) -> str | None:
    data = store.read_small(p, 1024 * 1024)
    return None if data is None else data.decode("utf-8", "replace")


def _write_config(site: Site, text: str) -> None:
    from shim.ops.deploy.configedit import write_keeping_mode

    write_keeping_mode(site.config_toml, text)


def describe(j: Journal) -> str:
    if j.op == "unknown":
        return "an earlier deploy or rollback left a journal that cannot be read"
    return (f"the {j.op} of {j.release or '?'} started {j.started} by pid {j.pid} did not finish "
            f"(it stopped at the step '{j.step}')")


def recover(site: Site, say: Callable[[str], None]) -> bool:
    """Settle a journal left by a killed deploy or rollback (call with the lock held)."""
    j = read(site)
    if j is None:
        return False
    say(f"note: {describe(j)}; repairing:")
    if j.op == "unknown":
        store.remove_partials(site)
        clear(site)
        say(f"  the journal was removed; check `{advice.command('status', site.site)}` and "
            f"`{advice.command('releases', site.site)}`.")
        return True
    settle(site, j, lambda m: say("  " + m), keep_checked=True)
    return True
