"""Dependencies per release: each release gets a venv of its own, reached through one stable path.

    SITE/venv -> www-approot/current/.venv      (a link; passenger_python = SITE/venv/bin/python)
    SITE/releases/NAME/.venv/                   the venv of release NAME

Passenger runs SITE/venv/bin/python; Python finds its venv through the *unresolved* path (checked
with real Passenger: sys.prefix is SITE/venv), and the path resolves through `current`. So the one
switch of `current` changes code and dependencies together, a rollback brings back the packages
of the release it returns to, and pip installing a new release's requirements never touches what
the live release imports.

A release's venv starts as a copy of the previous release's, made of hard links (fast, and no
space for what did not change; pip replaces files, it never writes into them), so pip only
installs what changed, from its own cache. Scripts in bin/ keep `#!SITE/venv/bin/python`, so
`SITE/venv/bin/wsgi-shim` and friends always run the live release's venv.

Only a venv that belongs to the site (SITE/venv, a real directory or already such a link) is
handled so; a venv outside the site may be shared with other sites and is left alone: then all
releases share it. Installing a release's requirements into it would change what the live
release imports before the switch, so a deploy refuses that (shared_refusal) unless pip would
change nothing (`pip install --dry-run --report` lists nothing to install; cheap, and exact: it
is pip's own resolver on that very venv) or the owner accepts it with --shared-venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from shim.ops.deploy import store
from shim.ops.deploy.store import DeployError
from shim.runtime.config import Config
from shim.runtime.layout import Site

VENV = ".venv"


def link_target(site: Site) -> str:
    return f"{site.approot_name}/{store.CURRENT}/{VENV}"


def site_venv(site: Site, cfg: Config) -> Path | None:
    """SITE/venv when passenger_python lives in it (unresolved path); None for a venv elsewhere."""
    if not cfg.passenger_python:
        return None
    venv = Path(cfg.passenger_python).parent.parent
    if venv.parent != site.site or venv.name.startswith("."):
        return None
    if venv.is_symlink():
        return venv if os.readlink(venv) == link_target(site) else None
    return venv if (venv / "pyvenv.cfg").is_file() else None


def is_linked(venv: Path, site: Site) -> bool:
    return venv.is_symlink() and os.readlink(venv) == link_target(site)


def release_venv(site: Site, name: str) -> Path:
    return store.release_path(site, name) / VENV


def copy_venv(source: Path, dest: Path) -> None:
    """DEST as a copy of the venv SOURCE: hard links for files, links kept as links."""
    for flags in (["-al"], ["-a"]):  # hard links need one filesystem and a file we may link
        done = subprocess.run(["cp", *flags, "--", str(source), str(dest)], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        if done.returncode == 0:
            return
        shutil.rmtree(dest, ignore_errors=True)
    raise DeployError(f"cannot copy the venv {source} to {dest}: {done.stderr.strip()}")


def new_venv(site: Site, cfg: Config, venv: Path, previous: str | None, name: str) -> Path:
    """The venv of the new release NAME, made from the live one; returns its python."""
    source = release_venv(site, previous) if previous and is_linked(venv, site) else venv.resolve()
    if not (source / "pyvenv.cfg").is_file():
        raise DeployError(f"the live venv {source} has no pyvenv.cfg; is {venv} a virtual environment?")
    dest = release_venv(site, name)
    copy_venv(source, dest)
    return dest / "bin" / Path(cfg.passenger_python).name


def fix_scripts(dest: Path, stable: Path) -> None:
    """Scripts pip wrote with `#!DEST/bin/python` get `#!STABLE/bin/python` (run once the
    release commands are done: from then on they run the live venv, whichever release is live)."""
    retarget_scripts(dest, dest, stable)


def own_scripts(dest: Path, stable: Path) -> None:
    """The scripts copied from the live venv (`#!STABLE/bin/python`) get `#!DEST/bin/python`:
    until the switch, a console script the release commands run (`flask --app app init-db`,
    `django-admin migrate`) runs the new release's packages, not the live release's."""
    retarget_scripts(dest, stable, dest)


def retarget_scripts(venv: Path, old_venv: Path, new_venv: Path) -> None:
    """Scripts in VENV/bin starting `#!OLD_VENV/bin/` start `#!NEW_VENV/bin/`; each is replaced by
    a new file, never changed in place (it may be a hard link shared with another release)."""
    bin_dir = venv / "bin"
    old = f"#!{old_venv}/bin/".encode()
    for entry in os.scandir(bin_dir):
        if entry.is_symlink() or not entry.is_file():
            continue
        with open(entry.path, "rb") as f:
            head = f.read(len(old))
            if head != old:
                continue
            data = head + f.read()
        st = os.stat(entry.path)
        tmp = f"{entry.path}.wsgi-shim-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data.replace(old, f"#!{new_venv}/bin/".encode(), 1))
        os.chmod(tmp, st.st_mode & 0o7777)
        os.replace(tmp, entry.path)


def _aside(venv: Path) -> Path:
    return venv.with_name(f".{venv.name}.before-releases")


def link_site_venv(site: Site, venv: Path, previous: str | None) -> None:
    """Turn the real directory SITE/venv into the link SITE/venv -> APPROOT/current/.venv.

    The previous release (the live one) first gets a copy of the venv as its .venv, so at the
    moment of the swap the link leads to the same packages the directory held; the swap itself is
    atomic. The old directory is then removed (running processes keep their open files); on a
    first deploy there is no release to go back to, so it is kept aside as SITE/.venv.before-releases
    until the deploy has finished: an undo puts it back (restore_site_venv)."""
    for stale in site.site.glob(f".{venv.name}.link-*"):  # a killed earlier attempt
        if stale.is_symlink():
            stale.unlink()
        else:
            shutil.rmtree(stale, ignore_errors=True)
    if previous:
        shutil.rmtree(release_venv(site, previous), ignore_errors=True)  # a half copy, killed
        copy_venv(venv, release_venv(site, previous))
    link = venv.with_name(f".{venv.name}.link-{os.getpid()}")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(link_target(site), link)
    if os.path.lexists(_aside(venv)):
        shutil.rmtree(_aside(venv), ignore_errors=True)
    if store.exchange(link, venv):
        os.rename(link, _aside(venv))  # LINK is now the old directory
    else:
        os.rename(venv, _aside(venv))  # a moment without SITE/venv: only where renameat2 is missing
        os.rename(link, venv)
    if previous:
        shutil.rmtree(_aside(venv), ignore_errors=True)


def _linked_venvs(site: Site) -> list[Path]:
    return [Path(e.path) for e in os.scandir(site.site) if e.is_symlink() and is_linked(Path(e.path), site)]


def restore_site_venv(site: Site, release: str | None) -> list[str]:
    """After an undo left no release current: SITE/venv, a link through `current`, leads
    nowhere, so it becomes the venv directory it was before the first deploy (kept aside by
    link_site_venv; else RELEASE's venv, which is a copy of it plus the release's requirements).
    Returns what was done, for the messages."""
    done = []
    for venv in _linked_venvs(site):
        source = _aside(venv)
        if not source.is_dir():
            if not release or not (release_venv(site, release) / "pyvenv.cfg").is_file():
                done.append(f"{venv} leads nowhere and no copy of the venv is left: rebuild it (inv venv).")
                continue
            source = release_venv(site, release)
        if store.exchange(source, venv):
            os.unlink(source)  # the link, now at SOURCE's path
        else:
            os.unlink(venv)
            os.rename(source, venv)
        done.append(f"{venv} is the site's venv directory again.")
    return done


def drop_aside(site: Site) -> None:
    """The venv directory kept aside by a first deploy, once a release with its venv is current
    (and what a swap killed half-way left: called with the deploy lock held)."""
    for venv in _linked_venvs(site):
        for old in [_aside(venv), *site.site.glob(f".{venv.name}.link-*")]:
            if old.is_symlink():
                old.unlink()
            elif old.is_dir():
                shutil.rmtree(old, ignore_errors=True)


def shared_venv_path(cfg: Config) -> Path:
    return Path(cfg.passenger_python).parent.parent if cfg.passenger_python else Path("(passenger_python not set)")


def shared_refusal(site: Site, venv: Path, pending: list[str] | None) -> str:
    """Why a deploy does not pip install into a venv that is not the site's own, and the two fixes."""
    what = (f"would install {', '.join(pending[:5])}{' ...' if len(pending) > 5 else ''}" if pending
            else "may change packages (pip's dry run could not tell; its output is above)")
    own = site.site / "venv"
    return (f"the release's requirements.txt {what} into {venv}, the venv the live release runs from "
            f"(passenger_python), which is not the site's own venv {own}: the live site would import the "
            "new packages before the switch, and a rollback would not bring the old ones back. Nothing was "
            f"switched; the new release was removed. Either give the site a venv of its own: `inv venv "
            f"--path {own}` (or python3 -m venv {own}), install wsgi-shim and your requirements into it, "
            f"and set passenger_python in config.toml and Apache's PassengerPython to {own}/bin/python; "
            "from the next deploy on, each release gets its own venv, switched with `current`. Or accept "
            "the shared venv: deploy again with --shared-venv.")
