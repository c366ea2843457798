"""The deploy and rollback steps, in order (each recorded in the journal before it is taken):

    deploy:   unpack -> shared paths -> venv + requirements -> compile -> check
              -> [maint on, restart, wait for the page] -> release commands
              -> switch (+ --init config) -> [maint off] -> restart -> prune
    rollback: shared paths -> check -> switch -> restart

The check runs before the switch (checkrelease.py), so `current` only ever names a checked
release; a failure or an interrupt before the switch leaves the live site exactly as it was.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shim.ops import control
from shim.ops.deploy import commands, journal, shared, store, venvs
from shim.ops.deploy.checkrelease import check_release, remove_stale_shadows
from shim.ops.deploy.golive import ReleaseFailing, ServeFailed, Watch, wait_for_state, watch_live
from shim.ops.deploy.journal import Journal
from shim.ops.deploy.store import CURRENT, RELEASES, DeployError
from shim.ops.deploy.unpack import Limits, unpack
from shim.runtime import advice
from shim.runtime.config import Config, load_config
from shim.runtime.layout import Site
from shim.runtime.problems import Problem

@dataclass
class Output:
    """Where progress goes (cli.py decides: stdout and stderr)."""
    say: Callable[[str], None]
    warn: Callable[[str], None]


@dataclass
class DeployOptions:
    source: Path
    maint: bool = False
    keep: int = store.DEFAULT_KEEP
    requirements: bool = True
    init: bool = False
    wait: float = 0
    url: str | None = None
    run: list[str] = field(default_factory=list)
    ref: str | None = None
    commit: str | None = None       # recorded as given (a tarball made from this git commit)
    limits: Limits = field(default_factory=Limits)
    maint_wait: float = 60
    request: bool = True            # the check sends the release its [check] requests
    rollback: bool = True           # a release failing after the switch is switched back
    shared_venv: bool = False       # pip may install into a venv outside the site (venvs.py)
    compile: bool = True            # byte-compile the release and its venv before the check


@dataclass
class Outcome:
    release: str
    previous: str | None
    restart_ok: bool = True
    removed: list[str] = field(default_factory=list)


class CheckFailed(DeployError):
    """The release has blocking problems; nothing was switched."""

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def restart(site: Site, wait: float, url: str | None, out: Output, prog: str = "wsgi-shim deploy") -> bool:
    """Touch restart.txt; with WAIT, wait for the new process and read its answers, as `wsgi-shim
    restart --wait` does."""
    if not wait:
        control.touch_restart(site.restart_txt)
        out.say("Restart requested: Passenger starts the new code on the site's next request.")
        return True
    out.say(f"Restart requested; waiting up to {wait:g} s for the new process...")
    restarted = control.restart(site, wait, url)
    if restarted.ok:
        out.say(restarted.report())
    else:
        out.warn(f"{prog}: {restarted.report()}")
    return restarted.ok


# ---- preparing a deploy ---------------------------------------------------------------------


def load_site_config(site: Site) -> Config:
    if not site.approot.is_dir():
        raise DeployError(f"{site.approot} does not exist; is {site.site} a site? "
                          f"({advice.command('install', site.site)} creates it)")
    cfg, problems = load_config(site.approot)
    if cfg is None:
        raise CheckFailed(f"cannot read {site.config_toml} (problems above); nothing was changed.", problems)
    from shim.runtime.config import DEPLOY_STOPS

    stops = [p for p in problems if p.what.endswith(DEPLOY_STOPS)]
    if stops:  # a deploy without a [deploy] shared entry would leave that data in the release
        raise CheckFailed(f"{site.config_toml}'s [deploy] section has {_plural(len(stops), 'problem')} (above); "
                          "fix it first. Nothing was changed.", stops)
    return cfg


def _config_change(site: Site, cfg: Config, init: bool) -> tuple[str | None, str | None]:
    """(old, new) config.toml text when --init must set chdir = "current"; (None, None) if not."""
    from shim.ops.deploy.configedit import chdir_is_current, chdir_refusal, init_config_text

    if chdir_is_current(cfg.chdir):
        return None, None
    if not init:
        raise DeployError(chdir_refusal(site, cfg.chdir))
    try:
        old = site.config_toml.read_text()
    except (OSError, UnicodeError) as exc:
        raise DeployError(f"cannot read {site.config_toml}: {exc}") from None
    return old, init_config_text(old)


def _unpack_release(site: Site, opts: DeployOptions, j: Journal, out: Output) -> int:
    root = store.releases_dir(site)
    source = opts.source
    if source.is_dir() and os.path.realpath(root).startswith(os.path.realpath(source) + "/"):
        raise DeployError(f"{source} contains the releases directory {root}; deploy from your "
                          "project directory, not the site's.")
    partial = root / f"{store.PARTIAL}{j.release}"
    journal.step(site, j, "unpack")
    from shim.runtime.permissions import create_private_dir

    create_private_dir(partial)
    with tempfile.TemporaryDirectory(prefix=".git-", dir=root) as tmp:
        if opts.ref:
            source, j.commit = commands.git_export(source, opts.ref, Path(tmp))
            out.say(f"  --ref {opts.ref} is commit {j.commit}")
        out.say(f"Unpacking {opts.source} into {store.release_path(site, j.release)} ...")
        count = unpack(source, partial, opts.limits)
    store.write_meta(site, j.release, {"source": str(opts.source), "ref": opts.ref, "commit": j.commit})
    os.rename(partial, store.release_path(site, j.release))
    return count


def _report_release_contents(site: Site, release: Path, count: int, out: Output) -> None:
    out.say(f"  {_plural(count, 'file')}")
    for stray in ("config.toml", "passenger_wsgi.py"):
        if (release / stray).exists():
            out.say(f"  note: the release holds a {stray}; the site uses {site.approot / stray}, "
                    "not this copy.")


def _still_live(j: Journal) -> str:
    return f"the site still serves {j.previous}" if j.previous else "no release is live yet (none was before)"


# ---- the deploy ------------------------------------------------------------------------------


def deploy(site: Site, opts: DeployOptions, out: Output) -> Outcome:
    """`wsgi-shim deploy SITE SOURCE`; raises DeployError (the site as it was) on failure."""
    cfg = load_site_config(site)
    old_config, new_config = _config_change(site, cfg, opts.init)
    if opts.maint and not opts.url:
        raise DeployError("--maint needs --url URL: wsgi-shim requests the site until the maintenance "
                          "page is what Passenger serves, before anything else happens.")
    with store.locked(site), journal.signals_interrupt():
        journal.recover(site, out.warn)
        remove_stale_shadows(site)
        store.remove_partials(site)
        previous = store.current_release(site)
        j = Journal(op="deploy", release=store.new_release_name(site), previous=previous,
                    config_old=old_config, config_new=new_config, commit=opts.commit)
        try:
            return _deploy_steps(site, opts, cfg, j, out)
        except BaseException as exc:
            with journal.signals_held():
                _undo(site, j, out, exc)
            if isinstance(exc, ReleaseFailing) and opts.url and j.previous and not site.maint_txt.exists():
                _wait_for_previous(site, j.previous, opts, out)
            raise


PREVIOUS_WAIT = 15.0  # after backing out: a bounded look at the previous release, never a long wait


def _wait_for_previous(site: Site, previous: str, opts: DeployOptions, out: Output) -> None:
    """After backing out: until processes of the previous release answer again (visitors may get
    the failing release's answers until Passenger has replaced its processes), so that the deploy
    exits when the site serves again, and says so."""
    try:
        stamp = os.stat(site.restart_txt).st_mtime  # the undo's restart
    except OSError:
        return
    w = Watch.begin(site, previous, store.release_path(site, previous), stamp=stamp,
                    label=f"the previous release {previous}")
    timeout = PREVIOUS_WAIT
    out.warn(f"  waiting up to {timeout:g} s until {previous} answers again ...")
    try:
        watch_live(w, timeout, opts.url, False, Output(out.warn, out.warn))
    except ServeFailed as exc:  # ReleaseFailing included: the previous release fails now too
        out.warn(f"  {exc}".replace("--no-rollback: the new release stays live.", "").rstrip()
                 + f"\n  Look at it: {advice.command('status', site.site, '--url', opts.url)}")


def _undo(site: Site, j: Journal, out: Output, exc: BaseException) -> None:
    if isinstance(exc, KeyboardInterrupt):
        out.warn(f"wsgi-shim deploy: interrupted ({exc.args[0] if exc.args else 'SIGINT'}); undoing:")
    if isinstance(exc, ReleaseFailing):
        out.warn(f"wsgi-shim deploy: release {j.release} failed after the switch (below); backing out:")
        if j.maint_set and j.step == "restart":
            _maint_back_on(site, j, out)
    journal.settle(site, j, lambda m: out.warn("  " + m), keep_checked=False)


def _deploy_steps(site: Site, opts: DeployOptions, cfg: Config, j: Journal, out: Output) -> Outcome:
    release = store.release_path(site, j.release)
    count = _unpack_release(site, opts, j, out)
    _report_release_contents(site, release, count, out)
    link_shared(site, cfg, j, new=True, out=out)
    venv = venvs.site_venv(site, cfg)
    python = _release_venv(site, cfg, j, venv, out) if venv else cfg.passenger_python
    _requirements(site, opts, cfg, j, release, python, out, shared=venv is None)
    if opts.compile:
        _compile(site, j, release, python, out)
    commands_due = bool(opts.run or cfg.deploy_run)
    # With release commands, the requests wait until they ran: a page needs its migrations.
    warnings = _check(site, j, python if venv else None, opts.request and not commands_due, out, opts.url)
    j.checked = True
    if opts.maint:
        _maint_on(site, opts, j, out)
    _release_commands(site, opts, cfg, j, release, python, out)
    if commands_due:
        _new_data_warnings(site, cfg, release, warnings, out)
        if opts.request:
            _check(site, j, python if venv else None, True, out, opts.url, after_commands=True)
    watching = Watch.begin(site, j.release, release)
    if venv:
        venvs.fix_scripts(venvs.release_venv(site, j.release), venv)
    linking = venv is not None and not venvs.is_linked(venv, site)
    if linking and j.previous:
        _link_venv(site, j, venv, out)
    _switch(site, j, out)
    if linking and not j.previous:
        _link_venv(site, j, venv, out)
    ok = _go_live(site, opts, j, out, watching)
    journal.step(site, j, "prune")
    removed = store.prune(site, opts.keep, {j.release, j.previous} - {None})
    venvs.drop_aside(site)
    journal.clear(site)
    return Outcome(j.release, j.previous, ok, removed)


def _check(site: Site, j: Journal, venv_python: str | None, requests: bool, out: Output, url: str | None,
           after_commands: bool = False) -> list[Problem]:
    """`wsgi-shim check` of the release before the switch (checkrelease.py); its warnings."""
    journal.step(site, j, "check")
    if after_commands:
        out.say(f"Sending release {j.release} its [check] requests, now that the release commands ran, "
                "before the switch ...")
    else:
        out.say(f"Checking release {j.release} as Passenger will load it (wsgi-shim check), before the switch"
                + (" ..." if requests else "; its [check] requests follow the release commands ..."))
    errors, warnings = check_release(site, j.release, j.config_new, Path(venv_python).name if venv_python else None,
                                     requests=requests, host=urlsplit(url).hostname if url else None)
    if errors:
        ran = " The release commands had run (a rollback does not undo what they changed)." if after_commands else ""
        raise CheckFailed(f"the new release has {_plural(len(errors), 'problem')} (listed above); "
                          f"nothing was switched: {_still_live(j)}.{ran} "
                          "Fix the problems and deploy again.", errors + warnings)
    for p in warnings:
        out.say(p.as_text())
    out.say("  OK")
    return warnings


def link_shared(site: Site, cfg: Config, j: Journal, new: bool, out: Output) -> None:
    """[deploy] shared: the release's links to SITE/shared/ (shared.py), before anything runs in it."""
    if not cfg.deploy_shared:
        return
    journal.step(site, j, "shared")
    out.say(f"Linking the shared paths ([deploy] shared) into {j.release} ...")
    try:
        shared.link_release(site, j.release, cfg.deploy_shared, j.previous, new, out.say)
    except OSError as exc:
        raise DeployError(f"cannot link the shared paths into {j.release}: {exc}. Nothing was switched; "
                          f"the data in {shared.shared_dir(site)} is as it was.") from None


def _compile(site: Site, j: Journal, release: Path, python: str, out: Output) -> None:
    journal.step(site, j, "compile")
    out.say(f"Compiling the release to bytecode ({Path(python).name} -m compileall), so that no visitor's "
            "request after the switch waits for it ...")
    started = time.monotonic()
    failed = commands.compile_release(python, release, out.say)
    for line in failed[:5]:
        out.say("  note: " + line)
    if len(failed) > 5:
        out.say(f"  note: ... and {len(failed) - 5} more files that do not compile")
    out.say(f"  done in {time.monotonic() - started:.1f} s")


def _new_data_warnings(site: Site, cfg: Config, release: Path, seen: list[Problem], out: Output) -> None:
    """Data the release commands created inside the release (a migrate's new SQLite file)."""
    known = {p.where for p in seen}
    for p in shared.unshared_data(site, release, shared.entries(cfg.deploy_shared), cfg.chdir):
        if p.where not in known:
            out.say(p.as_text())


def _release_venv(site: Site, cfg: Config, j: Journal, venv: Path, out: Output) -> str:
    journal.step(site, j, "venv")
    out.say(f"Making the release's own venv {venvs.release_venv(site, j.release)} from the live one "
            "(hard links: only what pip changes takes space) ...")
    python = venvs.new_venv(site, cfg, venv, j.previous, j.release)
    venvs.own_scripts(venvs.release_venv(site, j.release), venv)
    return str(python)


def _link_venv(site: Site, j: Journal, venv: Path, out: Output) -> None:
    """Once per site: SITE/venv becomes the link through `current` (venvs.py)."""
    journal.step(site, j, "venv-link")
    venvs.link_site_venv(site, venv, j.previous)
    out.say(f"  {venv} -> {venvs.link_target(site)} from now on: each release has its own venv, "
            "switched with `current`.")


def _requirements(site: Site, opts: DeployOptions, cfg: Config, j: Journal, release: Path, python: str,
                  out: Output, shared: bool) -> None:
    if not (release / "requirements.txt").is_file():
        return
    if not opts.requirements:
        out.say("Skipping requirements.txt (--no-requirements).")
        return
    journal.step(site, j, "requirements")
    if shared and not opts.shared_venv:
        # The live release runs from this venv: only a pip run that changes nothing is safe.
        venv = venvs.shared_venv_path(cfg)
        out.say(f"Installing requirements.txt: {venv} is not the site's own venv, so first "
                f"{python} -m pip install --dry-run -r requirements.txt ...")
        pending, why = commands.pending_requirements(python, release, cfg)
        if pending == []:
            out.say(f"  nothing to install: every requirement is already satisfied in {venv}.")
            return
        for line in why:
            out.say("  pip: " + line)
        raise DeployError(venvs.shared_refusal(site, venv, pending))
    if shared:
        out.say(f"  --shared-venv: pip installs into {venvs.shared_venv_path(cfg)}, which the live "
                "release runs from, before the switch; a rollback will not bring the old packages back.")
    out.say(f"Installing requirements.txt: {python} -m pip install -r requirements.txt ...")
    out.say("  " + commands.install_requirements(python, release, cfg, out.say))


def _maint_back_on(site: Site, j: Journal, out: Output) -> None:
    """A --maint deploy failing after the switch: maintenance goes back on while the previous
    release is switched back. After release commands it stays on: they may have changed what the
    previous release reads (a migrated database), so the owner lifts it once that release works."""
    control.maint_on(site.maint_txt)
    control.touch_restart(site.restart_txt)
    if j.step == "restart" and _commands_ran(j):
        journal.step(site, j, "restart", maint_set=False)
        out.warn("  maintenance mode is on again, and stays on: the release commands ran, and a rollback does "
                 f"not undo them (e.g. migrations). Check the previous release ({advice.command('check', site.site)}),"
                 f" then: {advice.command('maint off', site.site)}")
    else:
        out.warn("  maintenance mode is on again while the previous release is switched back.")


def _commands_ran(j: Journal) -> bool:
    return bool(j.commands)


def _maint_on(site: Site, opts: DeployOptions, j: Journal, out: Output) -> None:
    if site.maint_txt.exists():
        out.say("Maintenance mode was already on; it stays on after the deploy.")
        return
    journal.step(site, j, "maint-on", maint_set=True)
    control.maint_on(site.maint_txt)
    before = time.time()
    stamp = control.touch_restart(site.restart_txt)
    out.say(f"Maintenance mode on; waiting up to {opts.maint_wait:g} s until Passenger serves the "
            "maintenance page ...")
    assert opts.url
    wait_for_state(site, stamp, before, opts.maint_wait, opts.url, "maintenance", out)


def _release_commands(site: Site, opts: DeployOptions, cfg: Config, j: Journal, release: Path, python: str,
                      out: Output) -> None:
    cmds = list(opts.run) or list(cfg.deploy_run)
    if not cmds:
        return
    journal.step(site, j, "commands", commands=cmds)
    if not site.maint_txt.exists():
        out.say(f"Note: visitors are served by {'release ' + j.previous if j.previous else 'the site as it is'} "
                "while these commands run; the new release goes live after them. If they change what "
                "the running code relies on (a database migration), deploy with --maint --url URL: "
                "visitors then see the maintenance page while they run.")
    chdir = Path(cfg.chdir)
    cwd = release / Path(*chdir.parts[1:]) if chdir.parts[:1] == (CURRENT,) else release
    for command in cmds:
        commands.run_release_command(command, cwd, cfg, python, out.say)


def _switch(site: Site, j: Journal, out: Output) -> None:
    journal.step(site, j, "switch")
    out.say(f"Switching {store.current_link(site)} -> ../{RELEASES}/{j.release}"
            + (f" (was {j.previous})" if j.previous else " (first deploy)"))
    store.switch(site, j.release)
    if j.config_new is not None:
        from shim.ops.deploy.configedit import write_keeping_mode

        write_keeping_mode(site.config_toml, j.config_new)
        out.say(f'  set [wsgi] chdir = "{CURRENT}" in {site.config_toml} (--init)')
    store.record_live(site, j.release, "deploy", j.commit)


def _go_live(site: Site, opts: DeployOptions, j: Journal, out: Output, w: Watch) -> bool:
    """Maintenance off (if this deploy put it up), restart, and watch the new release while the
    deploy waits: its first failure raises ReleaseFailing (the undo switches back) unless
    --no-rollback; a release that never answered fails a --maint deploy, and is reported otherwise."""
    journal.step(site, j, "restart")
    if j.maint_set:
        control.maint_off(site.maint_txt)
        out.say("Maintenance mode off.")
    stamp = control.touch_restart(site.restart_txt)
    timeout = max(opts.wait, opts.maint_wait) if opts.maint and opts.url else opts.wait
    if not timeout:
        out.say("Restart requested: Passenger starts the new code on the site's next request.")
        return True
    if site.maint_txt.exists() and opts.url:  # it was on before this deploy, and stays on
        out.say(f"Restart requested; waiting up to {timeout:g} s until the maintenance page is served again ...")
        wait_for_state(site, stamp, w.before, timeout, opts.url, "maintenance", out)
        return True
    out.say(f"Restart requested; watching the new release for up to {timeout:g} s"
            + (f" ({opts.url} and the app log) ..." if opts.url else " (the app log: production traffic) ..."))
    try:
        watch_live(w, timeout, opts.url, opts.rollback, out)
    except ReleaseFailing as exc:
        if opts.rollback:
            raise
        out.warn(f"wsgi-shim deploy: {exc}")
        return False
    except ServeFailed as exc:
        if opts.maint:
            raise
        out.warn(f"wsgi-shim deploy: {exc}")
        return False
    return True
