"""Issue 19 item 7: `inv deploy` / `fab deploy` silently left out git submodules (missing without
--ref, an empty directory with it); the check passed and requests failed with
ModuleNotFoundError. Now their files are packed, or the deploy refuses and says why. Real git
repositories; the real deploy runs as the site's user under `inv` and the app is loaded as
Passenger loads it."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from shim.tasks import deploy as deploy_tasks
from tests.support.sites import VENV, load_like_passenger, make_site, run_as_site
from tests.tasks.conftest import inv_as_site

APP = ("from vendor.greeting import words\n\n"
       "def application(environ, start_response):\n"
       "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
       "    return [words().encode()]\n")


def git(repo: Path, *args: str, as_site: bool = False) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
           "-c", "protocol.file.allow=always", *args]
    done = run_as_site(cmd) if as_site else subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def project(base: Path, as_site: bool = False) -> tuple[Path, Path]:
    """A library repository and a project that has it as the submodule vendor/."""
    lib, proj = base / "greeting-lib", base / "proj"
    for repo in (lib, proj):
        (run_as_site if as_site else subprocess.run)(["mkdir", "-p", str(repo)])
        git(repo, "init", "-q", as_site=as_site)
    write(lib / "__init__.py", "", as_site)
    write(lib / "greeting.py", "def words():\n    return 'hello from the submodule v1'\n", as_site)
    git(lib, "add", "-A", as_site=as_site)
    git(lib, "commit", "-q", "-m", "v1", as_site=as_site)
    write(proj / "app.py", APP, as_site)
    git(proj, "submodule", "add", "-q", str(lib), "vendor", as_site=as_site)
    git(proj, "add", "-A", as_site=as_site)
    git(proj, "commit", "-q", "-m", "app with its submodule", as_site=as_site)
    return lib, proj


def write(path: Path, text: str, as_site: bool = False) -> None:
    if as_site:
        done = run_as_site(["python3", "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                            str(path), text])
        assert done.returncode == 0, done.stderr
    else:
        path.write_text(text)


def names(tar: Path) -> dict[str, bytes]:
    with tarfile.open(tar) as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isfile()}


def test_submodules_are_packed_with_and_without_ref(tmp_path):
    lib, proj = project(tmp_path)
    path, _, _ = deploy_tasks.build_tarball(proj, tmp_path)
    got = names(path)
    assert "vendor/greeting.py" in got and b"v1" in got["vendor/greeting.py"], sorted(got)
    # --ref: the submodule at the commit the project records, not as its work tree is now.
    (proj / "vendor" / "greeting.py").write_text("def words():\n    return 'uncommitted'\n")
    path, _, _, _ = deploy_tasks.git_tarball(proj, "HEAD", tmp_path, tasks_files=False)
    got = names(path)
    assert b"hello from the submodule v1" in got["vendor/greeting.py"], sorted(got)
    assert "vendor/__init__.py" in got


def test_a_submodule_that_is_not_checked_out_is_refused(tmp_path):
    _, proj = project(tmp_path)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(proj), str(clone)], check=True)  # no --recurse-submodules
    for pack in (lambda: deploy_tasks.build_tarball(clone, tmp_path),
                 lambda: deploy_tasks.git_tarball(clone, "HEAD", tmp_path, tasks_files=False)):
        with pytest.raises(Exit) as info:
            pack()
        message = str(info.value.message)
        assert info.value.code == 1 and "git submodule vendor" in message, message
        assert "git submodule update --init --recursive" in message and "nothing was deployed" in message


@pytest.mark.realserver
def test_inv_deploy_of_a_project_with_a_submodule_serves_it(site_repo):
    site = make_site("inv-submodule")
    _, proj = project(site_repo, as_site=True)
    for name in ("tasks.py", "fabfile.py"):
        run_as_site(["cp", str(site_repo / name), str(proj / name)])
    env = {"INVOKE_SHIM_SITE": str(site.site), "INVOKE_SHIM_VENV": str(VENV)}
    for args in (["deploy", "--init"], ["deploy", "--ref", "HEAD"]):
        done = inv_as_site(proj, *args, **env)
        assert done.returncode == 0, done.stdout + done.stderr
        page = load_like_passenger(site).response
        assert page.body == "hello from the submodule v1", (args, page.body)
