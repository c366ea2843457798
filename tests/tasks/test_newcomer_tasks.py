"""The tasks from nothing, as a newcomer meets them: `wsgi-shim tasks SITE` writes the files,
the printed `inv` runs; a misspelt task or flag gets a did-you-mean and exit 2; advice printed
under a task names the task's form; `fab` without -H, a refused login and a path of this
machine given for the host each say what happened (real `inv`/`fab` subprocesses, real sshd)."""

from __future__ import annotations

import getpass
import re
import socket
import tempfile
from pathlib import Path

import pytest

from tests.support.accounts import SITE_USER, gid, uid
from tests.support.sites import BASE, HELLO_APP, VENV, make_site, run_as_site, write_file
from tests.tasks.conftest import command_env, inv
from tests.tasks.test_tasks_ssh import fab


def test_a_misspelt_task_or_flag_gets_a_did_you_mean_and_exit_2(own_repo):
    task = inv("chek", cwd=own_repo)
    assert task.returncode == 2, task.stderr
    assert "No idea what 'chek' is!" in task.stderr and "Did you mean 'check'?" in task.stderr
    assert "inv --list lists the tasks" in task.stderr
    flag = inv("deploy", "--kep", "3", cwd=own_repo)
    assert flag.returncode == 2
    assert "Did you mean --keep? inv --help deploy lists its flags." in flag.stderr
    missing = inv("maint", cwd=own_repo)
    assert missing.returncode == 2 and "inv --help maint shows how to call it" in missing.stderr
    empty = inv("check", "--site", cwd=own_repo)
    assert empty.returncode == 2 and "--site needs a value. inv --help check shows how to call it" in empty.stderr


def test_wsgi_shim_tasks_keeps_a_quoted_host_home_path_and_says_why(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "shim.cli", "tasks", "~/mysite", "--url", "https://x.example/"],
                          cwd=tmp_path, env=command_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fabric.yaml").read_text().splitlines()[1:] == [
        "shim:", '  site: "~/mysite"', '  url: "https://x.example/"']
    assert "note: ~/mysite is not a directory on this machine" in done.stdout
    assert (tmp_path / "fabfile.py").read_text().count("from shim.tasks import ns") == 1


def test_fab_names_itself_in_the_hint(own_repo):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "fabric", "chek"], cwd=own_repo, env=command_env(),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2
    assert "Did you mean 'check'? fab --list lists the tasks" in done.stderr


@pytest.mark.realserver
def test_wsgi_shim_tasks_writes_the_files_and_the_printed_inv_runs(tasks_venv):
    site = make_site("newcomer-tasks")
    project = Path(tempfile.mkdtemp(prefix="project-", dir=BASE / "repos"))
    project.chmod(0o755)
    import os

    os.chown(project, uid(SITE_USER), gid())
    plain = {"PATH": "/usr/bin:/bin"}
    done = run_as_site([str(tasks_venv / "bin/wsgi-shim"), "tasks", str(site.site), "--venv", str(VENV),
                        "--dir", str(project)], env=plain)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in project.iterdir()) == ["fabfile.py", "fabric.yaml", "invoke.yaml", "tasks.py"]
    printed = re.search(r"Run the tasks from there: (\S+) --list", done.stdout).group(1)
    assert printed == f"{tasks_venv}/bin/inv"
    checked = run_as_site(["sh", "-c", f"{printed} check"], cwd=project, env=plain)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK:" in checked.stdout
    again = run_as_site([str(tasks_venv / "bin/wsgi-shim"), "tasks", str(site.site), "--dir", str(project)],
                        env=plain)
    assert again.returncode == 1 and "nothing was written" in again.stderr


@pytest.mark.realserver
def test_advice_under_inv_names_the_inv_form_and_runs_as_printed(site_repo, tasks_venv):
    site = make_site("newcomer-init")
    write_file(site_repo / "app.py", HELLO_APP)
    on_path = {"PATH": f"{tasks_venv}/bin:/usr/bin:/bin"}  # where the user's inv is
    # The newcomer's first deploy, with --maint, on a site install made (chdir "."): refused, with
    # the one step that does it, in the form they are using.
    refused = run_as_site(["inv", "deploy", "--maint", "--url", "http://127.0.0.1:9/", "--site", str(site.site),
                           "--venv", str(VENV)], cwd=site_repo, env=on_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    advised = re.search(r"in one step: (inv deploy --init .+?) \(when chdir", refused.stdout + refused.stderr)
    assert advised, refused.stdout + refused.stderr
    assert advised.group(1) == f"inv deploy --init --site {site.site} --venv {VENV}"
    deployed = run_as_site(["sh", "-c", advised.group(1)], cwd=site_repo, env=on_path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    again = run_as_site(["inv", "deploy", "--site", str(site.site), "--venv", str(VENV)], cwd=site_repo,
                        env=on_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(rf"To go back to \S+: inv rollback --site {site.site} --venv {VENV}$", again.stdout, re.M)


def test_fab_without_h_says_it_runs_here_before_anything_else(own_repo, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "fabric", "check", "--site", str(tmp_path / "mysite")],
                          cwd=own_repo, env=command_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    first = done.stderr.splitlines()[0]
    assert first == (f"fab without -H: running on this machine ({socket.gethostname()}), not on a host. "
                     "For the host: fab -H USER@HOST TASK.")
    assert "fab install" in done.stderr  # and its advice names fab, not inv


@pytest.mark.realserver
def test_a_refused_login_names_the_user_and_where_the_name_came_from(sshd, own_repo):
    result = fab(sshd, own_repo, "check", "--site", "/srv/x", hosts=f"127.0.0.1:{sshd.port}")
    me = getpass.getuser()
    assert result.returncode == 255
    assert f"Could not log in as {me}@127.0.0.1:{sshd.port}" in result.stderr
    assert f"-H without user@ logs in as {me}" in result.stderr and "-H NAME@127.0.0.1" in result.stderr
    given = fab(sshd, own_repo, "check", "--site", "/srv/x", hosts=sshd.host("shimother"))
    assert "The user name 'shimother' is the one given with -H" in given.stderr


@pytest.mark.realserver
def test_a_path_of_this_machine_given_for_the_host_is_recognised(sshd, own_repo):
    home = str(Path("~").expanduser())
    result = fab(sshd, own_repo, "check", "--site", f"{home}/mysite")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{home}/mysite does not exist on 127.0.0.1." in result.stderr
    assert "your shell expanded ~ here" in result.stderr and "--site '~/mysite'" in result.stderr


@pytest.mark.realserver
def test_advice_under_fab_h_names_the_fab_form_and_runs_as_printed(sshd, own_repo):
    import shlex
    import subprocess
    import sys

    site = make_site("newcomer-fab")
    source = site.site.parent / "v1"
    write_file(source / "app.py", HELLO_APP)
    first = run_as_site([str(VENV / "bin/wsgi-shim"), "deploy", str(site.site), str(source), "--init"])
    assert first.returncode == 0, first.stdout + first.stderr
    refused = fab(sshd, own_repo, "rollback", "--site", str(site.site))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    host = sshd.host(SITE_USER)
    advised = re.search(r"nothing to roll back to \((fab -H .+?) shows the history", refused.stderr)
    assert advised, refused.stderr
    assert advised.group(1) == f"fab -H {host} releases --site {site.site}"
    words = shlex.split(advised.group(1))  # pasted, with the key the user's ssh setup would give
    env = command_env(FABRIC_SHIM_KNOWN_HOSTS=str(sshd.known_hosts), FABRIC_SHIM_VENV=str(VENV))
    pasted = subprocess.run([sys.executable, "-m", "fabric", "-i", str(sshd.client_key), *words[1:]],
                            cwd=own_repo, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            check=False)
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert "(current)" in pasted.stdout
