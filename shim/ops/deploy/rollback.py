"""`wsgi-shim rollback`: back to the release that was live before the current one (from the
history, not by name), or --to any kept release; checked before the switch like a deploy. The
release gets its links to the shared paths first (shared.py), so it sees the data the site has
now, not what it held when it was last live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shim.ops.deploy import journal, store, venvs
from shim.ops.deploy.checkrelease import check_release, remove_stale_shadows
from shim.ops.deploy.configedit import chdir_is_current
from shim.ops.deploy.journal import Journal
from shim.ops.deploy.steps import CheckFailed, Outcome, Output, link_shared, load_site_config, restart
from shim.ops.deploy.store import RELEASES, DeployError
from shim.runtime import advice
from shim.runtime.layout import Site


@dataclass
class RollbackOptions:
    to: str | None = None
    wait: float = 0
    url: str | None = None
    request: bool = True  # the check sends the release its [check] requests


def pick_target(site: Site, to: str | None, current: str | None) -> str | None:
    """The release to go back to; None when TO is already current."""
    names = store.list_releases(site)
    if to:
        target = to.rstrip("/").rsplit("/", 1)[-1]
        if target not in names:
            listed = ", ".join(names) or "none"
            raise DeployError(f"there is no release {to!r} in {store.releases_dir(site)} (releases: {listed}).")
        return None if target == current else target
    if current is None:
        raise DeployError(f"nothing has been deployed to {site.site} yet, so there is nothing to roll "
                          "back to.")
    target = store.previous_live(site, current)
    if target is None:
        # Releases made before the history existed: the one before by name, as before.
        older = [n for n in names if store.sort_key(n) < store.sort_key(current)]
        if not store.live_sequence(site) and older:
            return older[-1]
        raise DeployError(f"no release that was live before {current} is kept; there is nothing to roll "
                          f"back to ({advice.command('releases', site.site)} shows the history; --to picks any "
                          "kept release).")
    return target


def rollback(site: Site, opts: RollbackOptions, out: Output) -> Outcome | None:
    """Switch back; None when there was nothing to do. Raises DeployError/CheckFailed."""
    cfg = load_site_config(site)
    if not chdir_is_current(cfg.chdir):
        raise DeployError(f"{site.config_toml} has [wsgi] chdir = {cfg.chdir or '(not set)'}, so the site "
                          "does not run from releases; there is nothing to roll back to.")
    with store.locked(site), journal.signals_interrupt():
        journal.recover(site, out.warn)
        remove_stale_shadows(site)
        current = store.current_release(site)
        target = pick_target(site, opts.to, current)
        if target is None:
            out.say(f"{opts.to} is already the current release; nothing to do.")
            return None
        j = Journal(op="rollback", release=target, previous=current, new_release=False,
                    commit=store.read_meta(site, target).get("commit"))
        try:
            python = _venv_python(site, cfg, target)
            link_shared(site, cfg, j, new=False, out=out)
            return _rollback_steps(site, opts, j, out, python)
        except BaseException as exc:
            with journal.signals_held():
                if isinstance(exc, KeyboardInterrupt):
                    out.warn(f"wsgi-shim rollback: interrupted ({exc.args[0] if exc.args else 'SIGINT'}); "
                             "undoing:")
                journal.settle(site, j, lambda m: out.warn("  " + m), keep_checked=False)
            raise


def _venv_python(site: Site, cfg, target: str) -> str | None:
    """With a venv per release: the python's name in TARGET's venv (which must exist)."""
    venv = venvs.site_venv(site, cfg)
    if venv is None or not venvs.is_linked(venv, site):
        return None
    if not (venvs.release_venv(site, target) / "pyvenv.cfg").is_file():
        raise DeployError(f"release {target} has no venv of its own ({venvs.release_venv(site, target)}: it was "
                          f"made before {venv} became a venv per release), so it cannot run; deploy its code "
                          "again instead.")
    return Path(cfg.passenger_python).name


def _rollback_steps(site: Site, opts: RollbackOptions, j: Journal, out: Output, venv_python: str | None) -> Outcome:
    journal.step(site, j, "check")
    out.say(f"Checking release {j.release} as Passenger will load it (wsgi-shim check), before the switch ...")
    errors, warnings = check_release(site, j.release, venv_python=venv_python, requests=opts.request)
    if errors:
        raise CheckFailed(f"release {j.release} has {len(errors)} problem{'s' if len(errors) != 1 else ''} "
                          f"(listed above); nothing was switched: current is still {j.previous or 'nothing'}.",
                          errors + warnings)
    for p in warnings:
        out.say(p.as_text())
    out.say("  OK")
    journal.step(site, j, "switch", checked=True)
    out.say(f"Switching {store.current_link(site)} -> ../{RELEASES}/{j.release} (was {j.previous or 'nothing'})")
    store.switch(site, j.release)
    store.record_live(site, j.release, "rollback", j.commit)
    journal.step(site, j, "restart")
    ok = restart(site, opts.wait, opts.url, out, "wsgi-shim rollback")
    journal.clear(site)
    return Outcome(j.release, j.previous, ok)
