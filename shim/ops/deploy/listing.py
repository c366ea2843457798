"""`wsgi-shim releases` and the deploy lines of `wsgi-shim status`: the kept releases, which is
current, the history of what went live, the git commit each was made from."""

from __future__ import annotations

import os
import time

from shim.ops.deploy import journal, store
from shim.ops.deploy.store import DeployError
from shim.runtime.layout import Site


def release_info(site: Site) -> dict:
    names = store.list_releases(site)
    try:
        current = store.current_release(site)
        error = None
    except DeployError as exc:
        current, error = None, str(exc)
    items = []
    undone = store.undone_releases(site)
    for name in names:
        m = store.NAME_RE.match(name)
        deployed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(m.group(1), "%Y%m%dT%H%M%SZ"))
        meta = store.read_meta(site, name)
        items.append({"name": name, "path": str(store.release_path(site, name)), "deployed": deployed,
                      "current": name == current, "commit": meta.get("commit"), "ref": meta.get("ref"),
                      "undone": name in undone})
    history = [{"release": h["release"], "time": h.get("time"), "how": h.get("how"),
                "commit": h.get("commit"), "kept": h["release"] in names}
               for h in store.read_history(site)]
    unfinished = journal.read(site) if store.releases_dir(site).is_dir() else None
    return {"site": str(site.site), "current": current, "releases": items, "history": history[-20:],
            "shared": _shared(site),
            "unfinished": journal.describe(unfinished) if unfinished else None, "error": error,
            "ignored": sorted(n for n in _entries(site) if store.NAME_RE.match(n) and n not in names)}


def _shared(site: Site) -> list[dict]:
    """config.toml's [deploy] shared paths, and whether SITE/shared/ holds each yet."""
    from shim.ops.deploy.shared import entries, shared_dir
    from shim.runtime.config import load_config

    cfg, _ = load_config(site.approot)
    names = cfg.deploy_shared if cfg is not None else []
    return [{"path": e.shown, "in": str(shared_dir(site) / e.path),
             "exists": os.path.lexists(shared_dir(site) / e.path)} for e in entries(names)]


def _entries(site: Site) -> list[str]:
    try:
        return os.listdir(store.releases_dir(site))
    except OSError:
        return []


def current_commit(site: Site) -> tuple[str | None, str | None]:
    """(current release, its git commit) for `wsgi-shim status`; (None, None) before any deploy."""
    try:
        current = store.current_release(site)
    except DeployError:
        return None, None
    return current, (store.read_meta(site, current).get("commit") if current else None)


def recover_unfinished(site: Site, say) -> bool:
    """For `status`: settle a journal left by a killed deploy unless one is running right now."""
    if journal.read(site) is None:
        return False
    try:
        with store.locked(site):
            return journal.recover(site, say)
    except DeployError:
        say("note: a deploy or rollback is running right now.")
        return False
