"""Tasks for deploying: `deploy`, `rollback`, `releases`.

`inv deploy` packs your project directory (or, with --ref, exactly one git commit's tree) into a
tarball here, and hands it to the site venv's `wsgi-shim deploy` (shim/ops/deploy/), which unpacks
it into a new release, installs its requirements, checks it, runs the release commands, switches
`current` and restarts the site (docs/deploying.md). Under `fab -H host` the
tarball is copied to a temporary directory on the host first and removed afterwards.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from invoke.exceptions import Exit

from shim.ops.deploy import SKIP_NAMES, TOOL_FILES
from shim.tasks.flags import SITE_HELP, VENV_HELP, shim_task, wait_args
from shim.tasks.remote import is_remote, paths, q
from shim.tasks.remote import run as run_task


def _git_files(source: Path) -> list[str] | None:
    """Files git would commit from SOURCE (tracked, plus new ones not ignored), relative to it;
    None when SOURCE is not in a git work tree (or git is not installed). A work tree git refuses
    to read (another user's: 'dubious ownership') is an error, never a silent walk: that would pack
    what .gitignore keeps out (instance/, .env, a local database)."""
    try:
        done = subprocess.run(["git", "-C", str(source), "ls-files", "-z", "--cached", "--others",
                               "--exclude-standard"], capture_output=True, check=False,
                              stdin=subprocess.DEVNULL)
    except OSError:
        return None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip()
        if "not a git repository" in said:
            return None
        raise Exit(f"deploy: {source} is in a git work tree, but git ls-files failed, so its .gitignore "
                   f"cannot decide what is packed; nothing was deployed. git says: {said}", code=1)
    files = [name for name in done.stdout.decode("utf-8", "surrogateescape").split("\0") if name]
    from shim.ops.deploy import DeployError, submodules  # a submodule is one entry: its files instead

    try:
        return submodules.worktree_files(source, _git_files, files)
    except DeployError as exc:
        raise Exit(f"deploy: {exc}", code=1) from None


def _walk_files(source: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d not in SKIP_NAMES and not os.path.isfile(os.path.join(root, d, "pyvenv.cfg"))]
        rel = os.path.relpath(root, source)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.append(name if rel == "." else f"{rel}/{name}")
    return found


def build_tarball(source: Path, out_dir: Path, tasks_files: bool = False) -> tuple[Path, int, str]:
    """Pack SOURCE into out_dir/<name>.tar.gz: (path, number of entries, how they were chosen).

    In a git work tree: the files git knows or would add (.gitignore honoured, so no venv, .env
    or build output), as they are on disk now. Elsewhere: everything but version control
    directories, __pycache__ and virtual environments. The deploy tooling's own files at the top
    (tasks.py, fabfile.py, invoke.yaml, fabric.yaml) stay out unless TASKS_FILES.
    """
    files = _git_files(source)
    how = "files git tracks or would add (.gitignore honoured)"
    if files is None:
        files = _walk_files(source)
        how = "all files except .git, __pycache__ and virtual environments"
    files = sorted(f for f in files if not any(part in SKIP_NAMES for part in f.split("/"))
                   and (tasks_files or f not in TOOL_FILES))
    if not tasks_files:
        how += "; without tasks.py, fabfile.py and invoke/fabric config files (--tasks-files includes them)"
    path = out_dir / f"{source.resolve().name or 'source'}.tar.gz"
    count = 0
    with tarfile.open(path, "w:gz") as tar:
        for rel in files:
            full = source / rel
            if not os.path.lexists(full):  # deleted in the work tree, not yet in git
                continue
            if not (full.is_symlink() or full.is_file()):
                continue
            tar.add(full, arcname=rel, recursive=False)
            count += 1
    return path, count, how


@shim_task(optional=["wait"], iterable=["run"], help={
    "source": "project directory to deploy (default: the current directory)",
    "maint": "show the maintenance page while the release commands run and the release is switched "
             "(e.g. for database migrations); needs a URL (--url or config shim.url)",
    "wait": "after the restart, wait until the new process has started; optional SECONDS "
            "(default: config shim.restart_wait); needs a URL",
    "url": "the site's public URL, requested while waiting (default: config shim.url)",
    "keep": "how many releases to keep (default 5; the current and previous are always kept)",
    "requirements": "pip install the release's requirements.txt into the release's venv "
                    "(default; --no-requirements skips it)",
    "shared_venv": "let pip install requirements into a venv outside the site, which the live release "
                   "runs from (refused otherwise unless nothing needs installing; see docs/deploying.md)",
    "compile": "byte-compile the release and its venv before the check (default; --no-compile skips it, "
               "and the first requests after the switch compile what they import)",
    "init": 'first deploy of an existing site: set config.toml\'s [wsgi] chdir "." to "current"',
    "ref": "deploy exactly this git commit, branch or tag of SOURCE (git archive); the commit is recorded",
    "run": "a release command run in the new release before the switch, e.g. 'python manage.py migrate' "
           "(repeatable; default: config.toml [deploy] run)",
    "tasks_files": "also ship tasks.py, fabfile.py, invoke.yaml and fabric.yaml (left out by default)",
    "request": "send the release its [check] requests before the switch (default; --no-request imports only)",
    "rollback": "switch back to the previous release when the new one fails a request while the deploy "
                "waits (default; --no-rollback keeps it live)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def deploy(c, source=None, maint=False, wait=None, url=None, keep=None, requirements=True, init=False,
           ref=None, run=None, tasks_files=False, site=None, venv=None, shared_venv=False, compile=True,
           request=True, rollback=True):
    """Deploy your project as a new release: unpack, install requirements, check, switch, restart.

    Packs SOURCE (default: the current directory; in a git work tree the files git tracks or
    would add) into a tarball and runs the site venv's `wsgi-shim deploy` on it. If the site
    check finds a problem, the site stays on its current release (exit 1). Under `fab -H host`
    the tarball is copied to a temporary directory on the host and removed afterwards.

    Example: inv deploy --maint --wait --run "python manage.py migrate"
    """
    p = paths(c, site, venv)
    src = Path(source or os.getcwd()).expanduser()
    if not src.is_dir():
        raise Exit(f"deploy: {src} is not a directory (--source names your project directory)", code=2)
    args: list[str] = []
    if maint:
        args.append("--maint")
    if keep is not None:
        if not str(keep).isdigit():
            raise Exit(f"deploy: --keep takes a number of releases, not {keep!r}", code=2)
        args += ["--keep", str(int(keep))]
    if not requirements:
        args.append("--no-requirements")
    if init:
        args.append("--init")
    if not compile:
        args.append("--no-compile")
    if shared_venv:
        args.append("--shared-venv")
    if not request:
        args.append("--no-request")
    if not rollback:
        args.append("--no-rollback")
    for command in run or []:
        args += ["--run", shlex.quote(command)]
    # --maint waits for the page to be served: it needs the URL even without --wait.
    args += wait_args(c, wait, url, "deploy", url_without_wait=maint)

    local_tmp = Path(tempfile.mkdtemp(prefix="wsgi-shim-deploy-"))
    remote_tmp = None
    try:
        if ref:
            tarball, count, how, commit = git_tarball(src, ref, local_tmp, tasks_files)
            args += ["--commit", commit]
        else:
            tarball, count, how = build_tarball(src, local_tmp, tasks_files)
        print(f"packed {count} entries of {src} ({how}) into {tarball.name}")
        target = str(tarball)
        if is_remote(c):
            remote_tmp = run_task(c, "mktemp -d", "making a temporary directory", hide=True).stdout.strip()
            target = f"{remote_tmp}/{tarball.name}"
            print(f"copying {tarball.name} to {c.host}:{remote_tmp}")
            c.put(str(tarball), target)
        run_task(c, p.shim("deploy", q(target), *args), "deploy", p=p)
    finally:
        if remote_tmp:
            c.run(f"rm -rf {q(remote_tmp)}", warn=True, hide=True)
        shutil.rmtree(local_tmp, ignore_errors=True)


def git_tarball(source: Path, ref: str, out_dir: Path, tasks_files: bool) -> tuple[Path, int, str, str]:
    """Exactly REF's tree as out_dir/<name>.tar.gz: (path, entries, how, full commit id)."""
    from shim.ops.deploy import DeployError
    from shim.ops.deploy.commands import git_export

    try:
        plain, commit = git_export(source, str(ref), out_dir)
    except DeployError as exc:
        raise Exit(f"deploy: {exc}", code=1) from None
    path = out_dir / f"{source.resolve().name or 'source'}.tar.gz"
    count = 0
    with tarfile.open(plain) as src, tarfile.open(path, "w:gz") as out:
        for member in src:
            if not tasks_files and member.name in TOOL_FILES:
                continue
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
            count += not member.isdir()
    plain.unlink()
    how = f"the tree of {ref} = commit {commit[:12]}" + ("" if tasks_files else ", without the tasks' files")
    return path, count, how, commit


@shim_task(optional=["wait"], help={
    "to": "the release to go back to (default: the one before the current one; see inv releases)",
    "wait": "after the restart, wait until the new process has started; optional SECONDS "
            "(default: config shim.restart_wait); needs a URL",
    "url": "the site's public URL, requested while waiting (default: config shim.url)",
    "request": "send the release its [check] requests before the switch (default; --no-request imports only)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def rollback(c, to=None, wait=None, url=None, site=None, venv=None, request=True):
    """Switch the site back to its previous release (or --to RELEASE), check it and restart.

    Refuses when there is no earlier release, and stays where it is if the check finds a
    problem in the release you go back to. With the site's own venv (SITE/venv) its packages come
    back too; in a venv outside the site, packages later deploys installed stay installed.

    Example: inv rollback --to 20260101T120000Z
    """
    p = paths(c, site, venv)
    args = (["--to", shlex.quote(str(to))] if to else []) + ([] if request else ["--no-request"])
    run_task(c, p.shim("rollback", *args, *wait_args(c, wait, url, "rollback")), "rollback", p=p)


@shim_task(help={"json": "print the releases as JSON", "site": SITE_HELP, "venv": VENV_HELP})
def releases(c, json=False, site=None, venv=None):
    """List the site's releases, newest first; the current one is marked with *.

    Example: inv releases --json
    """
    p = paths(c, site, venv)
    run_task(c, p.shim("releases", *(["--json"] if json else [])), "listing the releases", p=p)
