"""Git submodules in what a deploy packs: their files go in, or the deploy refuses and says why.

    files = worktree_files(source, git_files)          # inv deploy (a work tree, as on disk)
    add_to_archive(source, commit, tar_path)           # --ref (git archive leaves them empty)

Without this, `git ls-files` lists a submodule as one entry (its directory) and `git archive`
writes it as an empty directory: the release lacked the submodule's code, the check passed if
nothing imported it at start-up, and requests failed with ModuleNotFoundError.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from shim.ops.deploy import DeployError

GITLINK = "160000"  # the mode git records for a submodule
FIX = "run `git submodule update --init --recursive` in {source} (and `git fetch` inside the submodule if "\
      "that commit is newer than its clone), then deploy again; nothing was deployed."


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, stdin=subprocess.DEVNULL,
                              check=False)
    except OSError as exc:
        raise DeployError(f"git cannot be run: {exc.strerror or exc}") from None


def _is_own_repository(path: Path) -> bool:
    """True when PATH is the top of a git work tree of its own (a checked-out submodule), not a
    directory inside its parent's."""
    if not (path / ".git").exists():
        return False
    top = _git(path, "rev-parse", "--show-toplevel")
    return top.returncode == 0 and Path(top.stdout.decode().strip()).resolve() == path.resolve()


def worktree_gitlinks(source: Path) -> list[str]:
    """Paths of the submodules recorded in SOURCE's index."""
    done = _git(source, "ls-files", "-s", "-z")
    out = []
    for entry in done.stdout.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.split(" ")[0] == GITLINK:
            out.append(path)
    return out


def worktree_files(source: Path, git_files: Callable[[Path], list[str] | None],
                   files: list[str]) -> list[str]:
    """FILES (from `git ls-files` in SOURCE) with each submodule's entry replaced by the files of
    its own work tree, recursively. Raises DeployError for a submodule that is not checked out."""
    links = set(worktree_gitlinks(source))
    if not links:
        return files
    out = [f for f in files if f not in links]
    for link in sorted(links):
        sub = source / link
        if not _is_own_repository(sub):
            raise DeployError(f"git submodule {link} is not checked out in {source} (an empty directory): its "
                              "code would be missing from the release; " + FIX.format(source=source))
        out += [f"{link}/{f}" for f in (git_files(sub) or [])]
    return out


def commit_gitlinks(repo: Path, commit: str) -> list[tuple[str, str]]:
    """(path, recorded commit) of each submodule in COMMIT's tree."""
    done = _git(repo, "ls-tree", "-r", "-z", commit)
    out = []
    for entry in done.stdout.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split(" ")
        if len(parts) == 3 and parts[0] == GITLINK:
            out.append((path, parts[2]))
    return out


def add_to_archive(source: Path, commit: str, tar_path: Path, prefix: str = "") -> int:
    """Append to the plain tar TAR_PATH (git archive of COMMIT in SOURCE) the tree of every
    submodule at the commit COMMIT records for it, recursively; the number of files added.
    Raises DeployError when a submodule or its commit is not available in SOURCE."""
    added = 0
    for path, sub_commit in commit_gitlinks(source, commit):
        sub = source / path
        where = f"{prefix}{path}"
        if not _is_own_repository(sub) or _git(sub, "cat-file", "-e", f"{sub_commit}^{{commit}}").returncode:
            raise DeployError(f"git submodule {where} (commit {sub_commit[:12]}) is not available in {sub}: its "
                              "code would be missing from the release; " + FIX.format(source=source))
        with tempfile.NamedTemporaryFile(suffix=".tar", dir=tar_path.parent) as part:
            done = _git(sub, "archive", "--format=tar", f"--prefix={where}/", f"--output={part.name}", sub_commit)
            if done.returncode != 0:
                raise DeployError(f"git archive of submodule {where} failed: "
                                  f"{done.stderr.decode(errors='replace').strip()}")
            with tarfile.open(part.name) as src, tarfile.open(tar_path, "a") as out:
                for member in src:
                    if member.name.rstrip("/") == where:  # the directory entry is there already
                        continue
                    out.addfile(member, src.extractfile(member) if member.isfile() else None)
                    added += member.isfile()
        added += add_to_archive(sub, sub_commit, tar_path, prefix=f"{where}/")
    return added
