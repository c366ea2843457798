"""`wsgi-shim deploy`, `rollback` and `releases` as subprocesses run by the site's user, on real
sites served the way Passenger serves them."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import SITE_USER, gid, uid
from tests.support.sites import (BASE, SYSTEM_PYTHON, load_like_passenger, make_site, run_as_site,
                                 update_config, write_file, wsgi_shim)
from tests.support.wheels import wheel

pytestmark = pytest.mark.realserver


def app_source(body: str) -> str:
    return ("def application(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [{body!r}.encode()]\n")


def source_dir(site: Site, name: str, files: dict[str, str]) -> Path:
    """A project directory of the site's user, next to the site."""
    root = site.site.parent / name
    for rel, text in files.items():
        write_file(root / rel, text)
    return root


def tarball(site: Site, name: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path = site.site.parent / name
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    os.chown(path, uid(SITE_USER), gid())
    path.chmod(0o640)
    return path


def member(name: str, data: bytes | None = b"x", kind: bytes = tarfile.REGTYPE,
           link: str = "", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info, (data if kind == tarfile.REGTYPE else None)


def releases(site: Site) -> list[str]:
    root = site.site / "releases"
    return sorted(n for n in os.listdir(root) if not n.startswith(".")) if root.exists() else []


def current(site: Site) -> str | None:
    link = site.approot / "current"
    return os.readlink(link).rsplit("/", 1)[-1] if os.path.lexists(link) else None


def body(site: Site) -> str:
    return load_like_passenger(site).response.body


def deploy(site: Site, source: Path, *flags: str):
    return wsgi_shim("deploy", str(site.site), str(source), *flags)


def deployed_site(name: str) -> Site:
    """A site whose first release (serving "v1") is deployed with --init."""
    site = make_site(name)
    result = deploy(site, source_dir(site, "v1", {"app.py": app_source("v1")}), "--init")
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def test_deploy_refuses_without_chdir_current_and_init_changes_that_line_only():
    site = make_site("deploy-init")
    src = source_dir(site, "v1", {"app.py": app_source("v1")})
    before = site.config_toml.read_text()

    refused = deploy(site, src)
    assert refused.returncode == 1
    assert 'chdir = "current"' in refused.stderr and "--init" in refused.stderr
    assert site.config_toml.read_text() == before and releases(site) == []

    done = deploy(site, src, "--init")
    assert done.returncode == 0, done.stdout + done.stderr
    after = site.config_toml.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [('chdir = "."', 'chdir = "current"')]
    assert after.startswith("# config.toml for wsgi-shim")  # the comments are all still there
    assert body(site) == "v1"
    release = site.site / "releases" / current(site)
    assert os.stat(release).st_mode & 0o777 == 0o750  # private, as create_private_dir makes it
    assert os.stat(release / "app.py").st_mode & 0o007 == 0


def test_init_refuses_a_chdir_it_cannot_change_safely():
    site = make_site("deploy-init-src")
    text = site.config_toml.read_text().replace('chdir = "."', 'chdir = "src"')
    write_file(site.config_toml, text, 0o640)
    result = deploy(site, source_dir(site, "v1", {"app.py": app_source("v1")}), "--init")
    assert result.returncode == 1
    assert '"current/SUBDIR"' in result.stderr
    assert site.config_toml.read_text() == text and releases(site) == []


def test_deploy_switch_refuse_a_broken_release_and_roll_back():
    site = deployed_site("deploy-cycle")
    v1 = current(site)

    v2 = deploy(site, source_dir(site, "v2", {"app.py": app_source("v2")}))
    assert v2.returncode == 0, v2.stdout + v2.stderr
    assert "Checking release" in v2.stdout and "before the switch" in v2.stdout and "Deployed" in v2.stdout
    assert f"To go back to {v1}: {BASE}/venv/bin/wsgi-shim rollback {site.site}" in v2.stdout
    assert body(site) == "v2"
    second = current(site)
    assert second != v1 and releases(site) == sorted([v1, second])

    restarted = site.restart_txt.stat().st_mtime
    broken = deploy(site, source_dir(site, "v3", {"app.py": "import no_such_module_anywhere\n" + app_source("v3")}))
    assert broken.returncode == 1
    assert "no_such_module_anywhere" in broken.stderr
    assert f"nothing was switched: the site still serves {second}" in broken.stderr
    assert current(site) == second and releases(site) == sorted([v1, second])  # v3 is gone
    assert site.restart_txt.stat().st_mtime == restarted  # no restart for a refused release
    assert body(site) == "v2"

    listing = wsgi_shim("releases", str(site.site))
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[0].startswith(f"* {second}")
    data = json.loads(wsgi_shim("releases", str(site.site), "--json").stdout)
    assert data["current"] == second
    assert [r["name"] for r in data["releases"] if r["current"]] == [second]

    back = wsgi_shim("rollback", str(site.site))
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"Rolled back to {v1}" in back.stdout and f"--to {second}" in back.stdout
    assert current(site) == v1 and body(site) == "v1"
    assert site.restart_txt.stat().st_mtime > restarted

    # Rollback goes by history: the release live before v1 now is the second one.
    again = wsgi_shim("rollback", str(site.site))
    assert again.returncode == 0, again.stderr
    assert f"Rolled back to {second}" in again.stdout and body(site) == "v2"
    same = wsgi_shim("rollback", str(site.site), "--to", second)
    assert same.returncode == 0 and "already the current release" in same.stdout
    history = json.loads(wsgi_shim("releases", str(site.site), "--json").stdout)["history"]
    assert [h["release"] for h in history] == [v1, second, v1, second]
    assert [h["how"] for h in history] == ["deploy", "deploy", "rollback", "rollback"]
    missing = wsgi_shim("rollback", str(site.site), "--to", "20000101T000000Z")
    assert missing.returncode == 1 and "there is no release '20000101T000000Z'" in missing.stderr


def test_rollback_to_a_release_that_no_longer_works_is_refused():
    site = deployed_site("deploy-rollback-bad")
    v1 = current(site)
    assert deploy(site, source_dir(site, "v2", {"app.py": app_source("v2")})).returncode == 0
    v2 = current(site)
    (site.site / "releases" / v1 / "app.py").write_text("raise RuntimeError('broken since')\n")
    result = wsgi_shim("rollback", str(site.site))
    assert result.returncode == 1
    assert "broken since" in result.stderr and f"nothing was switched: current is still {v2}" in result.stderr
    assert current(site) == v2 and body(site) == "v2"


def test_nothing_deployed_yet_means_nothing_to_roll_back():
    site = make_site("deploy-none")
    text = site.config_toml.read_text().replace('chdir = "."', 'chdir = "current"')
    write_file(site.config_toml, text, 0o640)
    result = wsgi_shim("rollback", str(site.site))
    assert result.returncode == 1 and "nothing has been deployed" in result.stderr
    listing = wsgi_shim("releases", str(site.site))
    assert listing.returncode == 0 and "No releases" in listing.stdout


def test_a_failing_requirements_install_leaves_nothing_behind():
    site = deployed_site("deploy-reqs")
    v1 = current(site)
    src = source_dir(site, "v2", {"app.py": app_source("v2"),
                                  "requirements.txt": "--no-index\nno-such-package-wsgi-shim-test==1.0\n"})
    # The test venv is outside the site (shared): --shared-venv lets pip run for real.
    result = deploy(site, src, "--shared-venv")
    assert result.returncode == 1
    assert "pip install -r requirements.txt failed" in result.stderr
    assert "  pip: " in result.stdout and "no-such-package-wsgi-shim-test" in result.stdout  # pip's own words
    assert "Nothing was switched" in result.stderr
    assert releases(site) == [v1] and current(site) == v1
    assert not [n for n in os.listdir(site.site / "releases") if n.startswith(".partial")]
    assert body(site) == "v1"


def test_requirements_are_installed_and_can_be_skipped():
    site = deployed_site("deploy-reqs-ok")
    # Already in the shared venv and --no-index: pip succeeds without the network.
    src = source_dir(site, "v2", {"app.py": app_source("v2"), "requirements.txt": "--no-index\nflask\n"})
    done = deploy(site, src)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Installing requirements.txt" in done.stdout
    bad = source_dir(site, "v3", {"app.py": app_source("v3"), "requirements.txt": "--no-index\nnope-x==1\n"})
    skipped = deploy(site, bad, "--no-requirements")
    assert skipped.returncode == 0, skipped.stderr
    assert "Skipping requirements.txt" in skipped.stdout and body(site) == "v3"


def outside_venv(site: Site) -> Path:
    """A venv of the site's user next to the site (not SITE/venv), with wsgi-shim and pip."""
    venv = site.site.parent / "outside-venv"
    for cmd in ([SYSTEM_PYTHON, "-m", "venv", str(venv)],
                [str(venv / "bin/pip"), "install", "-q", "--no-deps", "--no-index",
                 str(next((BASE / "wheels").glob("*.whl")))]):
        done = run_as_site(cmd)
        assert done.returncode == 0, done.stdout + done.stderr
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})
    return venv


DEPMOD_APP = ("import depmod\n\n\ndef application(environ, start_response):\n"
              "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
              "    return [f'{NAME} depmod {depmod.VERSION}'.encode()]\n")


def test_requirements_for_a_venv_outside_the_site_are_refused_unless_nothing_changes_or_shared_venv():
    site = make_site("deploy-shared-venv")
    venv = outside_venv(site)
    python = str(venv / "bin/python")
    house = site.site.parent / "wheels"
    house.mkdir()
    wheel(house, "1.0")
    os.chown(house, uid(SITE_USER), gid())
    done = deploy(site, source_dir(site, "v1", {"app.py": app_source("v1")}), "--init")
    assert done.returncode == 0, done.stdout + done.stderr
    v1 = current(site)
    reqs = f"--no-index\n--find-links {house}\ndepmod==1.0\n"

    def release(name: str, requirements: str = reqs) -> Path:
        return source_dir(site, name, {"app.py": DEPMOD_APP.replace("{NAME}", name),
                                       "requirements.txt": requirements})

    refused = deploy(site, release("v2"))
    assert refused.returncode == 1, refused.stdout
    assert f"would install depmod==1.0 into {venv}, the venv the live release runs from" in refused.stderr
    assert f"not the site's own venv {site.site}/venv" in refused.stderr
    assert f"inv venv --path {site.site}/venv" in refused.stderr and "--shared-venv" in refused.stderr
    assert "Nothing was switched" in refused.stderr
    # Nothing changed: the venv has no depmod, the site serves v1, the release is gone.
    assert run_as_site([python, "-c", "import depmod"]).returncode == 1
    assert releases(site) == [v1] and current(site) == v1
    assert load_like_passenger(site, python=python).response.body == "v1"

    shared = deploy(site, release("v2"), "--shared-venv")
    assert shared.returncode == 0, shared.stdout + shared.stderr
    assert "--shared-venv: pip installs into" in shared.stdout and "  pip: " in shared.stdout
    assert load_like_passenger(site, python=python).response.body == "v2 depmod 1.0"

    # Every requirement already satisfied: pip would change nothing, so no flag is needed.
    same = deploy(site, release("v3"))
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"nothing to install: every requirement is already satisfied in {venv}" in same.stdout
    assert load_like_passenger(site, python=python).response.body == "v3 depmod 1.0"

    # pip cannot tell (an unknown package): refused too, with pip's own words.
    unknown = deploy(site, release("v4", "--no-index\nno-such-package-wsgi-shim-test==1.0\n"))
    assert unknown.returncode == 1
    assert "pip's dry run could not tell" in unknown.stderr and "--shared-venv" in unknown.stderr
    assert "  pip: " in unknown.stdout and "no-such-package-wsgi-shim-test" in unknown.stdout
    assert load_like_passenger(site, python=python).response.body == "v3 depmod 1.0"


HOSTILE = {
    "absolute": [member("/tmp/wsgi-shim-evil")],
    "dotdot": [member("../evil.py")],
    "dotdot-inside": [member("pkg/../../evil.py")],
    "symlink-absolute": [member("etc", kind=tarfile.SYMTYPE, link="/etc")],
    "symlink-up": [member("up", kind=tarfile.SYMTYPE, link="../../www-approot")],
    "symlink-chain": [member("a", kind=tarfile.SYMTYPE, link="."),
                      member("b", kind=tarfile.SYMTYPE, link="a/..")],
    "write-through-link": [member("d", kind=tarfile.SYMTYPE, link="."), member("d/x.py")],
    "hardlink-outside": [member("passwd", kind=tarfile.LNKTYPE, link="/etc/passwd")],
    "hardlink-up": [member("h", kind=tarfile.LNKTYPE, link="../x")],
    "device": [member("dev", kind=tarfile.CHRTYPE)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tarballs_are_refused_and_leave_nothing(case):
    site = deployed_site(f"deploy-evil-{case}")
    v1 = current(site)
    archive = tarball(site, f"{case}.tar.gz", [member("app.py", app_source("evil").encode()),
                                                *HOSTILE[case]])
    result = deploy(site, archive)
    assert result.returncode == 1, result.stdout
    assert "wsgi-shim deploy:" in result.stderr and "Traceback" not in result.stderr
    assert releases(site) == [v1] and current(site) == v1
    assert not [n for n in os.listdir(site.site / "releases") if n.startswith(".partial")]
    assert not Path("/tmp/wsgi-shim-evil").exists() and not (site.site / "evil.py").exists()
    assert body(site) == "v1"


def test_a_good_tarball_with_links_inside_is_deployed():
    site = deployed_site("deploy-tar")
    archive = tarball(site, "v2.tgz", [
        member("pkg", kind=tarfile.DIRTYPE, data=None, mode=0o755),
        member("pkg/__init__.py", b""),
        member("pkg/web.py", app_source("v2 from a tarball").encode()),
        member("app.py", kind=tarfile.SYMTYPE, link="pkg/web.py"),
        member("copy.py", kind=tarfile.LNKTYPE, link="pkg/web.py"),
        member("pkg/__pycache__/web.cpython-311.pyc", b"stale"),
    ])
    result = deploy(site, archive)
    assert result.returncode == 0, result.stdout + result.stderr
    release = site.site / "releases" / current(site)
    assert os.readlink(release / "app.py") == "pkg/web.py"
    assert (release / "copy.py").read_text() == (release / "pkg/web.py").read_text()
    # The archive's stale .pyc was left out; the deploy's compile wrote a real one.
    assert (release / "pkg/__pycache__/web.cpython-311.pyc").read_bytes() != b"stale"
    assert body(site) == "v2 from a tarball"


def test_a_directory_source_skips_vcs_caches_and_venvs():
    site = deployed_site("deploy-skip")
    src = source_dir(site, "v2", {"app.py": app_source("v2"), ".git/config": "[core]\n",
                                  "__pycache__/stale.cpython-311.pyc": "x", "venv/bin/python": "x",
                                  "env2/pyvenv.cfg": "home = /usr\n", "static/site.css": "body{}\n"})
    result = deploy(site, src)
    assert result.returncode == 0, result.stdout + result.stderr
    release = site.site / "releases" / current(site)
    # (the check's import of app.py may have written its own __pycache__/app.*.pyc since)
    assert sorted(set(os.listdir(release)) - {"__pycache__"}) == ["app.py", "static"]
    assert not (release / "__pycache__/stale.cpython-311.pyc").exists()


def test_pruning_keeps_n_and_never_the_current_or_previous():
    site = deployed_site("deploy-prune")
    for n in range(2, 5):
        result = deploy(site, source_dir(site, f"v{n}", {"app.py": app_source(f"v{n}")}), "--keep", "2")
        assert result.returncode == 0, result.stdout + result.stderr
    kept = releases(site)
    assert len(kept) == 2 and current(site) == kept[-1]
    assert "Removed old release" in result.stdout
    # After a rollback the current release is the older one; a new deploy keeps it as previous.
    assert wsgi_shim("rollback", str(site.site)).returncode == 0
    previous = current(site)
    result = deploy(site, source_dir(site, "v5", {"app.py": app_source("v5")}), "--keep", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert previous in releases(site) and current(site) in releases(site) and len(releases(site)) == 2
    assert body(site) == "v5"


def test_maint_without_a_url_is_refused_before_anything_changes():
    site = deployed_site("deploy-maint")
    v1 = current(site)
    refused = deploy(site, source_dir(site, "v2", {"app.py": app_source("v2")}), "--maint")
    assert refused.returncode == 1
    assert "--maint needs --url URL" in refused.stderr
    assert releases(site) == [v1] and current(site) == v1 and not site.maint_txt.exists()
    # (what --maint does with a URL is proven through real Passenger: tests/e2e/test_deploy_load.py)


def test_wait_without_a_request_reports_the_timeout():
    site = deployed_site("deploy-wait")
    result = deploy(site, source_dir(site, "v2", {"app.py": app_source("v2")}), "--wait", "1")
    assert result.returncode == 1
    assert "wsgi-shim deploy: no new process started within 1 s" in result.stderr
    assert "the new release is live" in result.stderr and "wsgi-shim rollback" in result.stderr
    assert body(site) == "v2"


def test_ctrl_c_during_the_check_puts_everything_back():
    import signal
    import subprocess
    import time

    from tests.support.sites import RUNUSER, VENV

    site = deployed_site("deploy-ctrl-c")
    v1 = current(site)
    slow = source_dir(site, "v2", {"app.py": "import time\ntime.sleep(60)\n" + app_source("v2")})
    proc = subprocess.Popen(
        [RUNUSER, "-u", SITE_USER, "-g", "shimproj", "--", str(VENV / "bin/wsgi-shim"), "deploy",
         str(site.site), str(slow)],
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        out = ""
        deadline = time.monotonic() + 60
        while "Checking release" not in out:
            assert time.monotonic() < deadline and proc.poll() is None, out
            out += proc.stdout.readline()
        assert current(site) == v1  # mid-check: the release being checked is not current
        assert json.loads((site.site / "releases/.journal.json").read_text())["step"] == "check"
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted (SIGINT); undoing:" in err and "removed the unfinished release" in err
    assert not (site.site / "releases/.journal.json").exists()
    assert current(site) == v1 and releases(site) == [v1] and not site.maint_txt.exists()
    assert body(site) == "v1"


def test_init_adds_chdir_to_a_config_that_has_none():
    site = make_site("deploy-init-none")
    text = site.config_toml.read_text().replace('chdir = "."\n', "")
    write_file(site.config_toml, text, 0o640)
    result = deploy(site, source_dir(site, "v1", {"app.py": app_source("v1")}), "--init")
    assert result.returncode == 0, result.stdout + result.stderr
    assert site.config_toml.read_text() == text.replace("\n[wsgi]\n", '\n[wsgi]\nchdir = "current"\n')
    assert body(site) == "v1"


def test_a_second_deploy_at_the_same_time_is_refused():
    import fcntl

    site = deployed_site("deploy-lock")
    v1 = current(site)
    with open(site.site / "releases/.lock", "r+") as held:  # as a running deploy holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        result = deploy(site, source_dir(site, "v2", {"app.py": app_source("v2")}))
        rollback = wsgi_shim("rollback", str(site.site))
    assert result.returncode == 1 and "another deploy or rollback" in result.stderr
    assert rollback.returncode == 1 and "another deploy or rollback" in rollback.stderr
    assert releases(site) == [v1] and current(site) == v1
    assert deploy(site, source_dir(site, "v3", {"app.py": app_source("v3")})).returncode == 0


# ---- issue 8: limits, --init's group, --ref, release commands, the journal, history --------


def sparse_member(name: str, realsize: int) -> tuple[tarfile.TarInfo, bytes]:
    """A PAX 1.0 GNU sparse member: a few hundred bytes that unpack to REALSIZE bytes."""
    info = tarfile.TarInfo(name)
    data = f"1\n{realsize - 1}\n1\n".encode()
    data += b"\0" * (512 - len(data)) + b"x"
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(realsize)}
    return info, data


def pax_tarball(site: Site, name: str, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    path = site.site.parent / name
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.chown(path, uid(SITE_USER), gid())
    return path


def assert_refused_cleanly(site: Site, result, v1: str, *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert releases(site) == [v1] and current(site) == v1
    assert [n for n in os.listdir(site.site / "releases") if n.startswith((".partial", ".check"))] == []
    assert body(site) == "v1"


def test_unpack_limits_name_the_limit_and_flags_raise_them():
    site = deployed_site("deploy-limits")
    v1 = current(site)
    app_member = member("app.py", app_source("v2").encode())
    sparse = pax_tarball(site, "sparse.tar.gz", [(app_member[0], app_member[1]),
                                                  sparse_member("big.bin", 4 * 1024 ** 3)])
    assert sparse.stat().st_size < 1000  # 4 GiB when written out
    assert_refused_cleanly(site, deploy(site, sparse), v1, "sparse file", "--allow-sparse")
    # Allowed as sparse, it is still counted at its full size against --max-bytes.
    assert_refused_cleanly(site, deploy(site, sparse, "--allow-sparse"), v1, "--max-bytes", "big.bin")

    many = tarball(site, "many.tar.gz", [member("app.py", app_source("v2").encode())]
                   + [member(f"data/f{i}.txt") for i in range(30)])
    assert_refused_cleanly(site, deploy(site, many, "--max-entries", "20"), v1, "more than 20 entries",
                           "--max-entries")
    big = tarball(site, "big.tar.gz", [member("app.py", app_source("v2").encode()),
                                       member("blob.bin", b"z" * 5000)])
    assert_refused_cleanly(site, deploy(site, big, "--max-bytes", "4096"), v1, "--max-bytes", "blob.bin")
    ok = deploy(site, many, "--max-entries", "40")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert body(site) == "v2"
    bad_flag = deploy(site, many, "--max-entries", "lots")
    assert bad_flag.returncode == 2 and "not a whole number" in bad_flag.stderr


def test_a_directory_source_over_the_limits_is_refused():
    site = deployed_site("deploy-limits-dir")
    v1 = current(site)
    src = source_dir(site, "v2", {"app.py": app_source("v2"), **{f"d/f{i}": "x" for i in range(12)}})
    assert_refused_cleanly(site, deploy(site, src, "--max-entries", "10"), v1, "--max-entries")


def test_init_keeps_the_config_files_group_and_mode():
    import grp
    import subprocess

    from tests.support.sites import RUNUSER, VENV

    site = make_site("deploy-init-group")
    site.config_toml.chmod(0o640)
    assert site.config_toml.stat().st_gid == gid()  # the project group (shimproj)
    src = source_dir(site, "v1", {"app.py": app_source("v1")})
    # Run with the user's own group as primary group, so a new file would get that one.
    result = subprocess.run([RUNUSER, "-u", SITE_USER, "--", str(VENV / "bin/wsgi-shim"), "deploy",
                             str(site.site), str(src), "--init"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stdout + result.stderr
    st = site.config_toml.stat()
    assert grp.getgrgid(st.st_gid).gr_name == "shimproj" and st.st_mode & 0o777 == 0o640
    assert 'chdir = "current"' in site.config_toml.read_text()


def _git(repo: Path, *args: str) -> str:
    from tests.support.sites import run_as_site

    r = run_as_site(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip() if isinstance(r.stdout, str) else r.stdout.decode().strip()


def test_ref_deploys_exactly_that_commit_and_records_it():
    site = deployed_site("deploy-ref")
    repo = source_dir(site, "repo", {"app.py": app_source("tagged")})
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    _git(repo, "tag", "v1.4")
    first = _git(repo, "rev-parse", "HEAD")
    write_file(repo / "app.py", app_source("working tree, not committed"))
    write_file(repo / "extra.py", "x = 1\n")
    done = deploy(site, repo, "--ref", "v1.4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"is commit {first}" in done.stdout
    assert body(site) == "tagged"
    release = site.site / "releases" / current(site)
    assert sorted(set(os.listdir(release)) - {"__pycache__"}) == ["app.py"]  # exactly the commit's tree
    listing = wsgi_shim("releases", str(site.site))
    assert f"commit {first[:12]}" in listing.stdout
    data = json.loads(wsgi_shim("releases", str(site.site), "--json").stdout)
    assert [r["commit"] for r in data["releases"] if r["current"]] == [first]
    status = wsgi_shim("status", str(site.site))
    assert f"commit {first}" in status.stdout
    for bad, words in (("no-such-tag", "no such commit"), ("--upload-pack=x", "not a git revision")):
        refused = deploy(site, repo, f"--ref={bad}")
        assert refused.returncode == 1 and words in refused.stderr and "Traceback" not in refused.stderr
    notgit = deploy(site, source_dir(site, "plain", {"app.py": app_source("p")}), "--ref", "main")
    assert notgit.returncode == 1 and "not a git repository" in notgit.stderr


def test_release_commands_run_in_the_new_release_with_the_sites_environment():
    from tests.support.sites import update_config

    site = deployed_site("deploy-run")
    v1 = current(site)
    update_config(site, {"environment": {"SITE_MODE": "production", "DB_PASSWORD": "hunter2-very-secret"}})
    src = source_dir(site, "v2", {"app.py": app_source("v2"),
                                  "manage.py": "import os, sys\nprint('manage', sys.argv[1:], os.getcwd(),"
                                               " os.environ['SITE_MODE'] == 'production', sys.prefix)\n"
                                               "print('password is', os.environ['DB_PASSWORD'])\n"})
    done = deploy(site, src, "--run", "python manage.py migrate", "--run", "python manage.py collectstatic")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    new = current(site)
    assert f"manage ['migrate'] {site.site}/releases/{new} True" in out
    assert "manage ['collectstatic']" in out
    assert "hunter2-very-secret" not in out and "password is" in out  # the secret is masked
    assert out.index("manage ['migrate']") < out.index("Switching")  # before the switch

    failing = deploy(site, source_dir(site, "v3", {"app.py": app_source("v3")}), "--run", "echo step; exit 3")
    assert failing.returncode == 1 and "failed (exit 3)" in failing.stderr and "step" in failing.stdout
    assert current(site) == new and body(site) == "v2" and v1 in releases(site)
    assert len(releases(site)) == 2

    update_config(site, {"deploy": {"run": ["python manage.py fromconfig"]}})
    manage = "import sys\nprint('cfg', sys.argv[1])\n"
    again = deploy(site, source_dir(site, "v4", {"app.py": app_source("v4"), "manage.py": manage}))
    assert again.returncode == 0 and "cfg fromconfig" in again.stdout, again.stdout + again.stderr


def test_a_killed_deploy_is_seen_and_repaired_by_the_next_command():
    import signal
    import subprocess
    import time

    from tests.support.sites import RUNUSER, VENV

    site = deployed_site("deploy-sigkill")
    v1 = current(site)
    slow = source_dir(site, "v2", {"app.py": "import time\ntime.sleep(60)\n" + app_source("v2")})
    proc = subprocess.Popen([RUNUSER, "-u", SITE_USER, "-g", "shimproj", "--", str(VENV / "bin/wsgi-shim"),
                             "deploy", str(site.site), str(slow)],
                            env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out = ""
    deadline = time.monotonic() + 60
    while "Checking release" not in out:
        assert time.monotonic() < deadline and proc.poll() is None, out
        out += proc.stdout.readline()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert (site.site / "releases/.journal.json").exists() and len(releases(site)) == 2
    listing = wsgi_shim("releases", str(site.site))
    assert "did not finish" in listing.stderr and "stopped at the step 'check'" in listing.stderr
    status = wsgi_shim("status", str(site.site))
    assert "did not finish" in status.stderr and "removed the unfinished release" in status.stderr
    assert releases(site) == [v1] and current(site) == v1 and body(site) == "v1"
    assert not (site.site / "releases/.journal.json").exists()
    assert [n for n in os.listdir(site.site / "releases") if n.startswith(".check")] == []
    assert deploy(site, source_dir(site, "v3", {"app.py": app_source("v3")})).returncode == 0


def test_releases_ignores_a_directory_with_an_impossible_date():
    site = deployed_site("deploy-baddate")
    v1 = current(site)
    (site.site / "releases" / "20261399T999999Z").mkdir()
    listing = wsgi_shim("releases", str(site.site))
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert "20261399T999999Z" in listing.stderr and "not a valid release name" in listing.stderr
    assert f"* {v1}" in listing.stdout
    assert wsgi_shim("releases", str(site.site), "--json").returncode == 0
    assert wsgi_shim("rollback", str(site.site), "--to", "20261399T999999Z").returncode == 1


def _deploy_until(site: Site, src: Path, marker: str, *flags: str):
    """A deploy as the site's user, in a session of its own, read until MARKER is printed."""
    import subprocess
    import time

    from tests.support.sites import VENV

    # Directly as the user (no runuser in between, which would die of the signal itself).
    proc = subprocess.Popen([str(VENV / "bin/wsgi-shim"), "deploy", str(site.site), str(src), *flags],
                            env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8",
                                 "HOME": "/tmp"}, cwd="/", user=SITE_USER, group="shimproj",
                            extra_groups=["shimproj"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out = ""
    deadline = time.monotonic() + 60
    while marker not in out:
        assert time.monotonic() < deadline and proc.poll() is None, out
        out += proc.stdout.readline()
    return proc


def test_killed_after_the_switch_the_checked_release_stays_and_a_signal_undoes_it():
    import signal

    site = deployed_site("deploy-after-switch")
    v1 = current(site)
    # --wait with a URL nobody answers: the deploy waits after the switch, where it is killed.
    flags = ("--wait", "60", "--url", "http://127.0.0.1:9/")
    proc = _deploy_until(site, source_dir(site, "v2", {"app.py": app_source("v2")}), "Restart requested", *flags)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    v2 = current(site)
    assert v2 != v1 and json.loads((site.site / "releases/.journal.json").read_text())["checked"] is True
    repaired = wsgi_shim("rollback", str(site.site), "--to", v1)
    assert "did not finish" in repaired.stderr and f"{v2} is live (it had passed the check" in repaired.stderr
    assert repaired.returncode == 0 and current(site) == v1 and body(site) == "v1"
    history = [h["release"] for h in json.loads(wsgi_shim("releases", str(site.site), "--json").stdout)["history"]]
    assert history[-2:] == [v2, v1]  # the kill did not lose that v2 went live

    proc = _deploy_until(site, source_dir(site, "v3", {"app.py": app_source("v3")}), "Restart requested", *flags)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"current is back to {v1}" in err and "stopped by SIGTERM" in err
    assert current(site) == v1 and body(site) == "v1" and not (site.site / "releases/.journal.json").exists()
    # The undone release had been live: processes started from it may still serve from it, so it
    # is kept for a later prune; it does not count as live in the history.
    v3 = [n for n in releases(site) if n not in (v1, v2)]
    assert len(v3) == 1 and f"kept {v3[0]} (it was live for a moment" in err
    back = wsgi_shim("rollback", str(site.site))
    assert back.returncode == 0 and current(site) == v2, back.stdout + back.stderr
