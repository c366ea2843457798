"""`deploy`, `rollback` and `releases` tasks: the command strings (MockContext), what the local
tarball holds, and real deploys under `inv` (as the site's user) and `fab -H` (real sshd)."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from shim.tasks import deploy as deploy_tasks
from shim.tasks import ns
from tests.support.accounts import SITE_USER, gid, uid
from tests.support.sites import VENV, load_like_passenger, make_site
from tests.tasks.conftest import inv_as_site
from tests.tasks.test_task_commands import APPROOT, SHIM, commands, context, only_command
from tests.tasks.test_tasks_ssh import fab



def app_source(body: str) -> str:
    return ("def application(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [{body!r}.encode()]\n")


def test_the_collection_has_the_deploy_tasks():
    assert {"deploy", "rollback", "releases"} <= set(ns.task_names)


def test_deploy_hands_a_local_tarball_to_wsgi_shim_deploy(tmp_path):
    (tmp_path / "app.py").write_text(app_source("x"))
    c = context(url="https://example.org/")
    deploy_tasks.deploy(c, source=str(tmp_path), maint=True, keep="3", requirements=False, wait="20")
    command = only_command(c)
    m = re.fullmatch(rf"{SHIM} deploy {APPROOT} (\S+\.tar\.gz) --maint --keep 3 --no-requirements "
                     r"--wait 20 --url https://example\.org/", command)
    assert m, command
    assert not Path(m.group(1)).exists(), "the local tarball was left behind"


def test_deploy_passes_shared_venv_on(tmp_path):
    c = context()
    deploy_tasks.deploy(c, source=str(tmp_path), shared_venv=True)
    assert re.fullmatch(rf"{SHIM} deploy {APPROOT} \S+\.tar\.gz --shared-venv", only_command(c))


def test_deploy_flags_are_checked_and_defaults_are_plain(tmp_path):
    c = context()
    deploy_tasks.deploy(c, source=str(tmp_path))
    assert re.fullmatch(rf"{SHIM} deploy {APPROOT} \S+\.tar\.gz", only_command(c))
    with pytest.raises(Exit) as info:
        deploy_tasks.deploy(context(), source=str(tmp_path), keep="many")
    assert info.value.code == 2
    with pytest.raises(Exit) as info:
        deploy_tasks.deploy(context(), source=str(tmp_path / "nope"))
    assert info.value.code == 2 and "is not a directory" in str(info.value.message)


def test_rollback_and_releases_commands():
    c = context()
    deploy_tasks.rollback(c, to="20261124T031500Z")
    deploy_tasks.releases(c, json=True)
    assert commands(c) == [f"{SHIM} rollback {APPROOT} --to 20261124T031500Z",
                           f"{SHIM} releases {APPROOT} --json"]


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return sorted(tar.getnames())


def test_tarball_of_a_plain_directory_skips_vcs_caches_and_venvs(tmp_path):
    src = tmp_path / "proj"
    for rel in ("app.py", "pkg/mod.py", "__pycache__/app.pyc", "venv/bin/python", "env/pyvenv.cfg",
                ".git/config"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    path, count, how = deploy_tasks.build_tarball(src, tmp_path)
    assert tar_names(path) == ["app.py", "pkg/mod.py"] and count == 2
    assert "except .git" in how


def test_tarball_of_a_git_work_tree_honours_gitignore(tmp_path):
    src = tmp_path / "proj"
    src.mkdir()
    for rel, text in ((".gitignore", ".env\nvenv/\n"), ("app.py", "x"), (".env", "SECRET=1"),
                      ("venv/bin/python", "x"), ("new.py", "not committed yet")):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", ".gitignore", "app.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    path, _, how = deploy_tasks.build_tarball(src, tmp_path)
    assert tar_names(path) == [".gitignore", "app.py", "new.py"]
    assert "git" in how


def test_the_tasks_own_files_stay_out_unless_asked(tmp_path):
    src = tmp_path / "proj"
    for rel in ("app.py", "tasks.py", "fabfile.py", "invoke.yaml", "fabric.yaml", "invoke.json", "fabric.py",
                "pkg/tasks.py"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    path, count, how = deploy_tasks.build_tarball(src, tmp_path)
    assert tar_names(path) == ["app.py", "pkg/tasks.py"] and count == 2  # only the top-level tooling
    assert "--tasks-files" in how
    path, count, _ = deploy_tasks.build_tarball(src, tmp_path, tasks_files=True)
    assert count == 8


def test_ref_packs_exactly_that_commit_and_passes_it_on(tmp_path):
    src = tmp_path / "proj"
    src.mkdir()
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    (src / "app.py").write_text("v1")
    (src / "tasks.py").write_text("from shim.tasks import ns\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    subprocess.run([*git, "tag", "v1.4"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (src / "app.py").write_text("changed after the tag")
    (src / "untracked.py").write_text("x")
    c = context(url="https://example.org/")
    deploy_tasks.deploy(c, source=str(src), ref="v1.4", maint=True, run=["python manage.py migrate"])
    command = only_command(c)
    assert re.fullmatch(rf"{SHIM} deploy {APPROOT} \S+\.tar\.gz --maint --run 'python manage\.py migrate' "
                        rf"--url https://example\.org/ --commit {commit}", command), command
    path, count, how, got = deploy_tasks.git_tarball(src, "v1.4", tmp_path, tasks_files=False)
    assert got == commit and tar_names(path) == ["app.py"] and "v1.4" in how
    with tarfile.open(path) as tar:
        assert tar.extractfile("app.py").read() == b"v1"
    with pytest.raises(Exit) as info:
        deploy_tasks.deploy(context(), source=str(src), ref="nope")
    assert info.value.code == 1 and "no such commit" in str(info.value.message)


# --- for real ------------------------------------------------------------------------------


def write_owned(path: Path, text: str) -> None:
    path.write_text(text)
    os.chown(path, uid(SITE_USER), gid())


def current(site) -> str:
    return os.readlink(site.approot / "current").rsplit("/", 1)[-1]


@pytest.mark.realserver
def test_inv_deploy_rollback_and_releases_from_the_project_directory(site_repo):
    site = make_site("inv-deploy")
    env = {"INVOKE_SHIM_SITE": str(site.site), "INVOKE_SHIM_VENV": str(VENV)}
    write_owned(site_repo / "app.py", app_source("v1 by inv"))
    first = inv_as_site(site_repo, "deploy", "--init", **env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "packed" in first.stdout and "Deployed" in first.stdout
    assert load_like_passenger(site).response.body == "v1 by inv"
    v1 = current(site)
    # The project's own tasks.py (the deploy tooling, not the app) stays out of the release.
    assert not (site.site / "releases" / v1 / "tasks.py").exists()
    assert "without tasks.py" in first.stdout

    write_owned(site_repo / "app.py", app_source("v2 by inv"))
    second = inv_as_site(site_repo, "deploy", "--keep", "2", **env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert load_like_passenger(site).response.body == "v2 by inv"

    write_owned(site_repo / "app.py", "import not_installed_anywhere\n")
    broken = inv_as_site(site_repo, "deploy", **env)
    assert broken.returncode == 1
    assert "not_installed_anywhere" in broken.stderr and "deploy failed (exit 1)" in broken.stderr
    assert load_like_passenger(site).response.body == "v2 by inv"

    listing = inv_as_site(site_repo, "releases", **env)
    assert listing.returncode == 0 and listing.stdout.startswith("* ")
    back = inv_as_site(site_repo, "rollback", **env)
    assert back.returncode == 0, back.stdout + back.stderr
    assert current(site) == v1 and load_like_passenger(site).response.body == "v1 by inv"


@pytest.mark.realserver
def test_fab_deploy_copies_the_tarball_up_and_cleans_up(sshd, own_repo):
    site = make_site("ssh-deploy")
    (own_repo / "app.py").write_text(app_source("v1 over ssh"))
    result = fab(sshd, own_repo, "deploy", "--init", "--site", str(site.site))
    assert result.returncode == 0, result.stdout + result.stderr
    copied = re.search(r"copying (\S+\.tar\.gz) to 127\.0\.0\.1:(\S+)", result.stdout)
    assert copied, result.stdout
    assert not Path(copied.group(2)).exists(), "the remote temporary directory was left behind"
    assert load_like_passenger(site).response.body == "v1 over ssh"
    release = site.site / "releases" / current(site)
    assert (release / "app.py").stat().st_uid == uid(SITE_USER)  # unpacked by the ssh user

    # (no exception: fab() asserts that no traceback reaches the output)
    (own_repo / "app.py").write_text("def not_the_application():\n    pass\n")
    broken = fab(sshd, own_repo, "deploy", "--site", str(site.site))
    assert broken.returncode == 1
    assert "[app-attribute-missing]" in broken.stderr
    assert "deploy failed on 127.0.0.1 (exit 1)" in broken.stderr
    assert load_like_passenger(site).response.body == "v1 over ssh"

    (own_repo / "app.py").write_text(app_source("v3 over ssh"))
    assert fab(sshd, own_repo, "deploy", "--site", str(site.site)).returncode == 0
    assert load_like_passenger(site).response.body == "v3 over ssh"
    back = fab(sshd, own_repo, "rollback", "--site", str(site.site))
    assert back.returncode == 0, back.stdout + back.stderr
    assert load_like_passenger(site).response.body == "v1 over ssh"


@pytest.mark.realserver
def test_a_git_work_tree_git_refuses_to_read_is_refused_not_packed_whole(tmp_path):
    """git will not read another user's work tree ('dubious ownership'): packing every file
    instead would ship what .gitignore keeps out (a local database in instance/, .env)."""
    from tests.support.accounts import ensure_accounts

    ensure_accounts()
    src = tmp_path / "proj"
    (src / "instance").mkdir(parents=True)
    (src / ".gitignore").write_text("instance/\n")
    (src / "app.py").write_text("x")
    (src / "instance" / "flaskr.sqlite").write_text("local data")
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    for root, dirs, files in os.walk(src):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, uid(SITE_USER), gid())
    with pytest.raises(Exit) as info:
        deploy_tasks.build_tarball(src, tmp_path)
    assert info.value.code == 1 and "dubious ownership" in str(info.value.message)
    assert "nothing was deployed" in str(info.value.message)
