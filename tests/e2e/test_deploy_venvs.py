"""Dependencies per release through real Apache + Passenger (issue 8, point 2).

A site whose venv is its own (SITE/venv, what `inv venv` makes). The first deploy turns SITE/venv
into the link SITE/venv -> www-approot/current/.venv; each release gets its own venv. Checked
here with real Passenger: the app process runs with sys.prefix = SITE/venv (the unresolved path)
and the runtime's venv checks agree; a release's requirements never reach the live release; a
rollback brings back the packages of the release it returns to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.test_passenger import shim_ok
from tests.support.accounts import PROJECT_GROUP, SITE_USER, gid, uid
from tests.support.apache import ApacheServer, poll
from tests.support.wheels import wheel
from tests.support.sites import BASE, SYSTEM_PYTHON, _checked, make_site, run_as_site, update_config, write_file

pytestmark = pytest.mark.realserver

APP = """\
import sys

import depmod


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{NAME} depmod {depmod.VERSION} prefix {sys.prefix}".encode()]
"""


def own_venv_site(name: str) -> tuple:
    site = make_site(name)
    venv = site.site / "venv"
    _checked(run_as_site([SYSTEM_PYTHON, "-m", "venv", str(venv)]))
    shim_wheel = next((BASE / "wheels").glob("*.whl"))
    _checked(run_as_site([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--no-index", str(shim_wheel)]))
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})
    house = site.site.parent / "wheels"
    house.mkdir()
    for v in ("1.0", "2.0"):
        wheel(house, v)
    os.chown(house, uid(SITE_USER), gid())
    return site, venv, house


def release(site, name: str, house: Path, dep: str) -> Path:
    src = site.site.parent / name
    write_file(src / "app.py", APP.replace("{NAME}", name))
    write_file(src / "requirements.txt", f"--no-index\n--find-links {house}\ndepmod=={dep}\n")
    return src


def served(text: str):
    return lambda r: r.status == 200 and "x-wsgi-shim" not in r.headers and text in r.body


def test_each_release_has_its_own_venv_switched_with_current(apache: ApacheServer, site_venv: Path) -> None:
    site, venv, house = own_venv_site("venv-per-release")
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=venv / "bin/python") + "/"

    r = shim_ok("deploy", str(site.site), str(release(site, "one", house, "1.0")), "--init",
                "--wait", "30", "--url", url)
    assert "  pip: " in r.stdout and "from now on: each release has its own venv" in r.stdout
    assert venv.is_symlink() and os.readlink(venv) == "www-approot/current/.venv"
    # Passenger runs SITE/venv/bin/python: sys.prefix is the unresolved path, and no venv problem.
    poll(url, served(f"one depmod 1.0 prefix {venv}"), timeout=30)
    assert "serving the app" in r.stdout
    one = os.readlink(site.approot / "current").rsplit("/", 1)[-1]

    r = shim_ok("deploy", str(site.site), str(release(site, "two", house, "2.0")), "--wait", "30", "--url", url)
    poll(url, served(f"two depmod 2.0 prefix {venv}"), timeout=30)
    two = os.readlink(site.approot / "current").rsplit("/", 1)[-1]
    # Release two's pip never touched release one's venv.
    old = next((site.site / "releases" / one / ".venv").glob("lib/python3*/site-packages/depmod.py"))
    assert "1.0" in old.read_text()
    # Scripts in a release's venv run the live venv, whichever release made them.
    assert (site.site / "releases" / two / ".venv/bin/pip").read_text().startswith(f"#!{venv}/bin/python")

    # Unchanged files are shared (hard links), not copied.
    shared = [next((site.site / "releases" / r / ".venv").glob("lib/python3*/site-packages/shim/__init__.py"))
              for r in (one, two)]
    assert shared[0].stat().st_ino == shared[1].stat().st_ino
    # `check` exits 0: nothing blocks, including what the real process recorded (venv-mismatch...).
    check = shim_ok("check", str(site.site))
    assert "venv-mismatch" not in check.stdout + check.stderr

    # A release whose requirements cannot be installed changes nothing the live release imports.
    bad = release(site, "three", house, "9.9")
    failed = run_as_site([str(venv / "bin/wsgi-shim"), "deploy", str(site.site), str(bad)])
    assert failed.returncode == 1 and "pip install -r requirements.txt failed" in failed.stderr
    assert served(f"two depmod 2.0 prefix {venv}")(poll(url, served("two"), timeout=30))

    r = shim_ok("rollback", str(site.site), "--wait", "30", "--url", url)
    poll(url, served(f"one depmod 1.0 prefix {venv}"), timeout=30)  # the old dependencies are back
    r = shim_ok("rollback", str(site.site), "--wait", "30", "--url", url)
    poll(url, served(f"two depmod 2.0 prefix {venv}"), timeout=30)
    status = shim_ok("status", str(site.site), "--url", url)
    assert "serving the app" in status.stdout


def test_a_killed_first_deploy_with_the_venv_swap_leaves_the_site_serving(apache: ApacheServer,
                                                                          site_venv: Path) -> None:
    import random
    import signal
    import subprocess
    import time

    from tests.support.load import Load

    seed = int(os.environ.get("WSGI_SHIM_KILL_SEED", time.time_ns()))
    delay = random.Random(seed).uniform(0.5, 8.0)
    print(f"SIGKILL after {delay:.2f} s (WSGI_SHIM_KILL_SEED={seed})")
    site, venv, house = own_venv_site("venv-kill")
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=venv / "bin/python") + "/"
    poll(url, served("hello"), timeout=30)
    with Load(url, clients=4, limit=180) as load:
        proc = subprocess.Popen([str(venv / "bin/wsgi-shim"), "deploy", str(site.site),
                                 str(release(site, "one", house, "1.0")), "--init", "--wait", "30", "--url", url],
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True, user=SITE_USER, group=PROJECT_GROUP,
                                extra_groups=[PROJECT_GROUP], cwd="/")
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        print(proc.communicate(timeout=60)[0])
        time.sleep(2)
        after = run_as_site([str(venv / "bin/wsgi-shim"), "deploy", str(site.site),
                             str(release(site, "two", house, "2.0")), "--init", "--wait", "30", "--url", url])
        print(after.stdout, after.stderr)
        assert after.returncode == 0, after.stdout + after.stderr
        poll(url, served(f"two depmod 2.0 prefix {venv}"), timeout=30)
    result = load.result
    print(result.summary())
    assert result.samples and not result.failures(), result.summary()
    assert venv.is_symlink() and not list(site.site.glob(".venv.link-*"))


def test_a_site_with_releases_from_before_venvs_per_release_is_converted(apache: ApacheServer,
                                                                         site_venv: Path) -> None:
    """Releases made when SITE/venv was one real directory (no .venv of their own): the next
    deploy gives the live release a copy of that venv, so a rollback to it works; an older
    release cannot run without packages of its own, and rollback says so."""
    site, venv, house = own_venv_site("venv-convert")
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER, group=PROJECT_GROUP,
                       python=venv / "bin/python") + "/"
    shim_ok("deploy", str(site.site), str(release(site, "one", house, "1.0")), "--init")
    shim_ok("deploy", str(site.site), str(release(site, "two", house, "2.0")))
    one, two = sorted(n for n in os.listdir(site.site / "releases") if not n.startswith("."))
    # Back to the layout of before: SITE/venv a real directory holding what the last deploy
    # installed (depmod 2.0), and no release with a venv of its own.
    _checked(run_as_site(["sh", "-c", f"rm {venv} && mv {site.site}/releases/{two}/.venv {venv} && "
                                      f"rm -rf {site.site}/releases/{one}/.venv"]))
    assert not venv.is_symlink() and (venv / "pyvenv.cfg").is_file()
    poll(url, served(f"two depmod 2.0 prefix {venv}"), timeout=30)

    r = shim_ok("deploy", str(site.site), str(release(site, "three", house, "1.0")), "--wait", "30", "--url", url)
    assert "from now on: each release has its own venv" in r.stdout
    assert venv.is_symlink() and os.readlink(venv) == "www-approot/current/.venv"
    poll(url, served(f"three depmod 1.0 prefix {venv}"), timeout=30)
    three = os.readlink(site.approot / "current").rsplit("/", 1)[-1]
    # The release live before the conversion got the packages it ran with; three's pip did not touch them.
    kept = next((site.site / "releases" / two / ".venv").glob("lib/python3*/site-packages/depmod.py"))
    assert "2.0" in kept.read_text()
    assert not (site.site / "releases" / one / ".venv").exists()

    shim_ok("rollback", str(site.site), "--wait", "30", "--url", url)
    poll(url, served(f"two depmod 2.0 prefix {venv}"), timeout=30)  # its own packages again
    check = shim_ok("check", str(site.site))
    assert "venv-mismatch" not in check.stdout + check.stderr

    refused = run_as_site([str(venv / "bin/wsgi-shim"), "rollback", str(site.site), "--to", one])
    assert refused.returncode == 1
    assert f"release {one} has no venv of its own" in refused.stderr and "deploy its code again" in refused.stderr
    assert os.readlink(site.approot / "current").endswith(two)
    assert served(f"two depmod 2.0 prefix {venv}")(poll(url, served("two"), timeout=30))

    shim_ok("rollback", str(site.site), "--to", three, "--wait", "30", "--url", url)
    poll(url, served(f"three depmod 1.0 prefix {venv}"), timeout=30)


def test_a_first_deploy_undone_after_the_venv_swap_gives_the_site_its_venv_back(site_venv: Path) -> None:
    """SIGTERM after the first deploy made SITE/venv the link through `current` (while it waits
    for the restart): the undo removes `current` and the release, so SITE/venv must be the venv
    directory it was again, with the site's packages, not a link to nothing."""
    import signal
    import subprocess
    import time

    from tests.support.sites import load_like_passenger

    site, venv, house = own_venv_site("venv-undo")
    before = sorted(p.name for p in next(venv.glob("lib/python3*/site-packages")).iterdir())
    proc = subprocess.Popen([str(venv / "bin/wsgi-shim"), "deploy", str(site.site),
                             str(release(site, "one", house, "1.0")), "--init", "--wait", "60",
                             "--url", "http://127.0.0.1:9/"],  # nothing answers: it waits
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, user=SITE_USER, group=PROJECT_GROUP, extra_groups=[PROJECT_GROUP], cwd="/")
    deadline = time.monotonic() + 120
    while not venv.is_symlink() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert venv.is_symlink(), "the deploy never swapped the venv"
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    print(out)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not os.path.lexists(site.approot / "current")
    assert not venv.is_symlink() and (venv / "pyvenv.cfg").is_file(), out
    assert sorted(p.name for p in next(venv.glob("lib/python3*/site-packages")).iterdir()) == before
    assert f"{venv} is the site's venv directory again" in out
    assert load_like_passenger(site, python=str(venv / "bin/python")).response.body == "hello from the app"
    # And the next deploy converts it as if nothing had happened.
    r = shim_ok("deploy", str(site.site), str(release(site, "two", house, "2.0")), "--init")
    assert venv.is_symlink() and "from now on: each release has its own venv" in r.stdout
    assert "two depmod 2.0" in load_like_passenger(site, python=str(venv / "bin/python")).response.body
    assert not list(site.site.glob(".venv.*"))


def test_release_commands_run_the_new_releases_console_scripts(site_venv: Path) -> None:
    """A release command that is a console script (`flask --app flaskr init-db`, `django-admin
    migrate`) runs the new release's packages: on the first deploy the live venv does not even
    have them, and on a later one it has the old versions. Once the release is live its scripts
    name SITE/venv again, like every other release's."""
    site, venv, house = own_venv_site("venv-scripts")
    for v in ("1.0", "2.0"):
        wheel(house, v, script="depcmd")
    r = shim_ok("deploy", str(site.site), str(release(site, "one", house, "1.0")), "--init", "--run", "depcmd")
    assert "| depmod 1.0" in r.stdout, r.stdout
    r = shim_ok("deploy", str(site.site), str(release(site, "two", house, "2.0")), "--run", "depcmd")
    assert "| depmod 2.0" in r.stdout, r.stdout
    script = site.site / "releases" / os.readlink(site.approot / "current").rsplit("/", 1)[-1] / ".venv/bin/depcmd"
    assert script.read_text().startswith(f"#!{venv}/bin/python")
    done = run_as_site([str(venv / "bin/depcmd")])
    assert done.returncode == 0 and done.stdout.strip() == "depmod 2.0", done.stdout + done.stderr
