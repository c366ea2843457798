"""build-python: the generated script run for real.

A fake "CPython source tarball" (a configure script and a Makefile written here, whose install
puts a wrapper around this interpreter at PREFIX/bin/pythonX.Y) exercises the whole control
flow in a second: verify, unpack, configure, make, install, smoke test, log tail on failure,
idempotent skip. One slow test builds the real CPython 3.11.2 (CI fetches its tarball with
.ci/fetch-python-source and passes it in WSGI_SHIM_PYTHON_TARBALL).
"""

from __future__ import annotations

import functools
import re
import hashlib
import http.server
import io
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest

from invoke import Config, Context, MockContext, Result
from invoke.exceptions import Exit

from shim.ops import buildpython
from shim.tasks import python as pytasks
from tests.support import pythons
from tests.support.accounts import SITE_USER
from tests.support.sites import BASE

REPO = Path(__file__).resolve().parents[2]
# The fake build wraps the interpreter running the tests, so its version is "the" version.
VERSION = "{}.{}.{}".format(*sys.version_info[:3])
SHORT = "{}.{}".format(*sys.version_info[:2])
SHELLS = [sh for sh in ("/bin/sh", "/bin/bash", "/bin/dash") if os.path.exists(sh)]

FAKE_BUILD = r"""#!/bin/sh
# fake CPython build steps: configure | all | install
calls=@CALLS@
echo "$1" >>"$calls"
case $1 in
configure)
    prefix=""
    shift
    for a in "$@"; do case $a in --prefix=*) prefix=${a#--prefix=} ;; esac; done
    echo "checking for a fake compiler... yes"
    [ "${FAKE_FAIL:-}" = configure ] && { echo "configure: error: no fake headers" >&2; exit 1; }
    echo "$prefix" >prefix.txt
    ;;
all)
    i=0
    while [ "$i" -lt 60 ]; do echo "compiling fake module $i"; i=$((i + 1)); done
    sleep "${FAKE_SLEEP:-0}"
    [ "${FAKE_FAIL:-}" = make ] && { echo "fake.c:42: error: the fake compiler broke" >&2; exit 2; }
    echo built >built.txt
    ;;
install)
    prefix=$(cat prefix.txt)
    rm -rf "$prefix/lib/shadow"
    mkdir -p "$prefix/bin" "$prefix/lib/shadow"
    printf '#!/bin/sh\nPYTHONPATH="%s/lib/shadow" exec %s "$@"\n' "$prefix" @PYTHON@ \
        >"$prefix/bin/python@SHORT@"
    chmod 755 "$prefix/bin/python@SHORT@"
    # FAKE_MISSING=ssl,zlib: install modules that shadow the real ones and fail to import,
    # as a build without those headers would.
    for m in $(echo "${FAKE_MISSING:-}" | tr , ' '); do
        echo "raise ImportError('No module named _$m (fake)')" >"$prefix/lib/shadow/$m.py"
    done
    ;;
esac
"""

MAKEFILE = "all:\n\tsh ./fakebuild.sh all\n\ninstall:\n\tsh ./fakebuild.sh install\n"
CONFIGURE = '#!/bin/sh\nexec sh ./fakebuild.sh configure "$@"\n'


def _add(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def make_fake_tarball(directory: Path, version: str = VERSION,
                      python: str = sys.executable) -> tuple[Path, Path, str]:
    """A Python-VERSION.tgz whose build is fake but real make/sh/tar work; returns
    (tarball, calls file, sha256). The calls file lists the build steps that ran. The
    "built" pythonX.Y runs PYTHON, which must be that version."""
    calls = directory / "calls.txt"
    script = (FAKE_BUILD.replace("@CALLS@", str(calls)).replace("@PYTHON@", python)
              .replace("@SHORT@", version.rsplit(".", 1)[0]))
    tarball = directory / f"Python-{version}.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        top = f"Python-{version}"
        _add(tar, f"{top}/configure", CONFIGURE, 0o755)
        _add(tar, f"{top}/fakebuild.sh", script, 0o755)
        _add(tar, f"{top}/Makefile", MAKEFILE)
    return tarball, calls, hashlib.sha256(tarball.read_bytes()).hexdigest()


@pytest.fixture
def fake(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    tarball, calls, sha = make_fake_tarball(src)

    class Fake:
        pass

    f = Fake()
    f.tarball, f.calls, f.sha = tarball, calls, sha
    f.prefix = tmp_path / "site" / f"python-{VERSION}"
    f.workdir = tmp_path / "work"
    f.python = f.prefix / "bin" / f"python{SHORT}"
    f.log = f.workdir / f"python-{VERSION}.log"
    return f


def calls_of(f) -> list[str]:
    return f.calls.read_text().split() if f.calls.exists() else []


def run_script(script: str, shell: str = "/bin/sh", env: dict | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run([shell, "-c", script], capture_output=True, text=True, env=full_env,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    proc.seconds = time.monotonic() - started
    return proc


def build(f, shell: str = "/bin/sh", env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    fields = {"version": VERSION, "prefix": str(f.prefix), "source": str(f.tarball),
              "sha256": f.sha, "workdir": str(f.workdir), "jobs": 2}
    fields.update(kwargs)
    return run_script(buildpython.build_script(buildpython.BuildRequest(**fields)), shell, env)


def restricted_path(tmp_path: Path, without: set[str]) -> str:
    """A PATH directory with every usual command except `without` (symlinks)."""
    bindir = tmp_path / "restricted-bin"
    bindir.mkdir(exist_ok=True)
    for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = bindir / name
            if name in without or target.exists() or target.is_symlink():
                continue
            target.symlink_to(os.path.join(d, name))
    return str(bindir)


# --- the whole flow, for real --------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_build_verifies_configures_makes_installs_and_smoke_tests(fake, shell):
    proc = build(fake, shell)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert calls_of(fake) == ["configure", "all", "install"]
    # Progress: each step numbered, in order, with the elapsed time.
    steps = [line for line in out.splitlines() if line.startswith("build-python: [")]
    assert [s.split("]")[0] + "]" for s in steps] == [f"build-python: [{i}/7]" for i in range(1, 8)]
    for word, line in zip(["source", "verify", "unpack", "configure", "make", "make install",
                           "smoke test"], steps):
        assert word in line and "elapsed)" in line, line
    assert f"configure --prefix={fake.prefix}" in out
    for module in ("ssl", "sqlite3", "ctypes", "zlib", "venv"):
        assert f"ok       {module}" in out
    assert "done in " in out and f"python: {fake.python}" in out
    assert "next: the site's venv from it: inv venv" in out  # the step after, named
    # The full log keeps every line of output; the big build tree is gone, the log stays.
    log = fake.log.read_text()
    assert "checking for a fake compiler... yes" in log and "compiling fake module 59" in log
    assert "compiling fake module" not in out
    assert not (fake.workdir / f"python-{VERSION}-build").exists()
    # What it installed is what the smoke test ran.
    version = subprocess.run([str(fake.python), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout
    assert version.strip() == str(sys.version_info[:2])


def test_second_run_is_a_fast_no_op(fake):
    assert build(fake).returncode == 0
    proc = build(fake)
    assert proc.returncode == 0, proc.stdout
    assert "is already built in" in proc.stdout and "nothing to do" in proc.stdout
    assert "next: the site's venv from it: inv venv" in proc.stdout
    assert calls_of(fake) == ["configure", "all", "install"]  # nothing ran again (no timing: issue 10)
    # --force rebuilds all the same.
    proc = build(fake, force=True)
    assert proc.returncode == 0, proc.stdout
    assert calls_of(fake) == ["configure", "all", "install"] * 2


def test_relative_prefix_and_workdir_resolve_on_the_host_that_runs_the_script(fake, tmp_path):
    # Over SSH, a relative path is relative to the remote home (the remote cwd), so the script
    # resolves it, not the machine that generated it.
    script = buildpython.build_script(buildpython.BuildRequest(
        version=VERSION, prefix="site/py", source=str(fake.tarball), sha256=fake.sha,
        workdir="work"))
    proc = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout
    assert (tmp_path / "site/py/bin" / f"python{SHORT}").exists()
    assert (tmp_path / "work" / f"python-{VERSION}.log").exists()
    home = tmp_path / "home"
    home.mkdir()
    script = buildpython.build_script(buildpython.BuildRequest(
        version=VERSION, prefix="~/py", source=str(fake.tarball), sha256=fake.sha))
    env = dict(os.environ, HOME=str(home))
    env.pop("XDG_CACHE_HOME", None)
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout
    assert (home / "py/bin" / f"python{SHORT}").exists()
    assert (home / ".cache/wsgi-shim/build-python" / f"python-{VERSION}.log").exists()


# --- refusals ------------------------------------------------------------------------------


def test_sha256_mismatch_is_refused_before_anything_is_built(fake):
    proc = build(fake, sha256="0" * 64)
    out = proc.stdout
    assert proc.returncode == 2, out
    assert "sha256 mismatch" in out
    assert f"expected {'0' * 64}" in out and f"got      {fake.sha}" in out
    assert "--sha256" in out
    assert calls_of(fake) == [] and not fake.prefix.exists()
    assert fake.tarball.exists()  # a local file is the user's: never deleted


def test_the_built_in_table_is_used_when_no_sha256_is_given(tmp_path):
    # A fake "3.11.2" tarball is not python.org's: the table's digest refuses it.
    tarball, calls, _ = make_fake_tarball(tmp_path, "3.11.2")
    script = buildpython.build_script(buildpython.BuildRequest(
        version="3.11.2", prefix=str(tmp_path / "p"), source=str(tarball),
        workdir=str(tmp_path / "w")))
    proc = run_script(script)
    assert proc.returncode == 2, proc.stdout
    assert f"expected {buildpython.KNOWN_SHA256['3.11.2']}" in proc.stdout
    assert not calls.exists()


def test_unknown_release_without_sha256_is_refused_with_how_to_pass_it(tmp_path):
    tarball, calls, sha = make_fake_tarball(tmp_path, "3.10.99")
    script = buildpython.build_script(buildpython.BuildRequest(
        version="3.10.99", prefix=str(tmp_path / "p"), source=str(tarball),
        workdir=str(tmp_path / "w")))
    proc = run_script(script)
    out = proc.stdout
    assert proc.returncode == 2, out
    assert "no known sha256 for Python 3.10.99" in out
    assert "--version 3.10.99 --sha256 HEX" in out
    assert f"is {sha}" in out  # a local file's digest, to compare with the published one
    assert not calls.exists() and not (tmp_path / "p").exists()


def test_downloaded_file_with_wrong_digest_is_deleted(fake, tmp_path):
    with serve_directory(fake.tarball.parent) as base:
        proc = build(fake, source=f"{base}/{fake.tarball.name}", sha256="f" * 64)
    assert proc.returncode == 2, proc.stdout
    assert "sha256 mismatch" in proc.stdout
    assert not (fake.workdir / fake.tarball.name).exists()


def test_parameters_are_checked_before_a_script_is_made():
    with pytest.raises(ValueError, match="3.11.2"):
        buildpython.build_script(buildpython.BuildRequest(version="3.11", prefix="/p"))
    with pytest.raises(ValueError, match="64 hex"):
        buildpython.build_script(buildpython.BuildRequest(version="3.11.2", prefix="/p",
                                                          sha256="abc"))


# --- failures: log tail and path -----------------------------------------------------------


@pytest.mark.parametrize("step,message", [
    ("make", "fake.c:42: error: the fake compiler broke"),
    ("configure", "configure: error: no fake headers"),
])
def test_failed_step_prints_the_log_tail_and_the_log_path(fake, step, message):
    proc = build(fake, env={"FAKE_FAIL": step})
    out = proc.stdout
    assert proc.returncode == 1, out
    assert f"FAILED: {step} (exit " in out
    assert "last 40 lines of the build log:" in out
    assert f"    | {message}" in out
    assert f"full build log: {fake.log}" in out
    assert "hint: " in out
    assert f"build tree kept for a look: {fake.workdir}/python-{VERSION}-build" in out
    assert message in fake.log.read_text()
    assert not fake.python.exists()
    if step == "make":
        # Only the tail: the early lines of a long log are not repeated on the terminal.
        assert "compiling fake module 59" in out and "compiling fake module 1\n" not in out


def test_missing_module_names_its_dev_package_and_an_incomplete_build_is_redone(fake):
    proc = build(fake, env={"FAKE_MISSING": "ssl,lzma"})
    out = proc.stdout
    assert proc.returncode == 3, out
    assert "MISSING  ssl -- needs libssl-dev" in out
    assert "missing  lzma -- needs liblzma-dev" in out  # optional: reported, not fatal alone
    assert "ok       sqlite3" in out
    assert "sudo apt-get install liblzma-dev libssl-dev" in out
    assert "missing required modules" in out
    # The headers got installed: the next run does not skip the incomplete build.
    proc = build(fake)
    assert proc.returncode == 0, proc.stdout
    assert "fails the smoke test: rebuilding" in proc.stdout
    assert calls_of(fake) == ["configure", "all", "install"] * 2


def test_optional_modules_alone_do_not_fail_the_build(fake):
    proc = build(fake, env={"FAKE_MISSING": "readline"})
    assert proc.returncode == 0, proc.stdout
    assert "missing  readline -- needs libreadline-dev" in proc.stdout


def test_long_steps_show_they_are_alive(fake):
    proc = build(fake, env={"FAKE_SLEEP": "2.5", "WSGI_SHIM_HEARTBEAT": "1"})
    assert proc.returncode == 0, proc.stdout
    assert "build-python:     ... make still running (" in proc.stdout


def test_optimize_passes_pgo_and_lto_to_configure(fake):
    proc = build(fake, optimize=True)
    assert proc.returncode == 0, proc.stdout
    assert "--enable-optimizations --with-lto" in fake.log.read_text()


# --- download ------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class serve_directory:
    """A real HTTP server on 127.0.0.1 for one directory."""

    def __init__(self, directory: Path):
        handler = functools.partial(_Quiet, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("downloader", ["curl", "wget", "python3"])
def test_downloads_verifies_and_caches_the_tarball(fake, tmp_path, downloader):
    others = {"curl", "wget"} - {downloader}
    if downloader != "python3" and not shutil.which(downloader):
        pytest.skip(f"{downloader} not installed")
    env = {"PATH": restricted_path(tmp_path, others)}
    with serve_directory(fake.tarball.parent) as base:
        url = f"{base}/{fake.tarball.name}"
        proc = build(fake, source=url, env=env)
        assert proc.returncode == 0, proc.stdout
        assert f"[1/7] download {url}" in proc.stdout
        size = fake.tarball.stat().st_size
        assert f"    downloaded {size / 1024:.0f} kB in " in proc.stdout  # bytes and rate
        assert "kB/s)" in proc.stdout
        cached = fake.workdir / fake.tarball.name
        assert cached.read_bytes() == fake.tarball.read_bytes()
        proc = build(fake, source=url, env=env, force=True)
        assert proc.returncode == 0, proc.stdout
        assert "(downloaded before)" in proc.stdout


class _Trickle(_Quiet):
    """Sends a file in small pieces with pauses: a download that takes a few seconds."""

    def copyfile(self, source, outputfile):
        while chunk := source.read(256):
            outputfile.write(chunk)
            outputfile.flush()
            time.sleep(0.4)


def test_a_slow_download_shows_bytes_and_rate_while_it_runs(fake):
    handler = functools.partial(_Trickle, directory=str(fake.tarball.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{fake.tarball.name}"
        proc = build(fake, source=url, env={"WSGI_SHIM_PROGRESS": "1"})
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stdout
    progress = [line for line in proc.stdout.splitlines() if " so far (" in line]
    assert progress, proc.stdout
    assert all(line.startswith("build-python:     ... ") and line.endswith("/s)")
               for line in progress), progress
    assert "    downloaded " in proc.stdout


def test_download_failure_says_so(fake, tmp_path):
    with serve_directory(tmp_path) as base:
        proc = build(fake, source=f"{base}/nothing-here.tgz")
    assert proc.returncode == 1, proc.stdout
    assert "FAILED: download" in proc.stdout and "hint: check the URL" in proc.stdout
    # Offline: the way round is named.
    assert "copy it to this host and pass --source FILE" in proc.stdout


# --- Passenger and Python 3.12 -------------------------------------------------------------


def fake_passenger_config(tmp_path: Path, version: str) -> str:
    bindir = tmp_path / f"passenger-{version}"
    bindir.mkdir()
    (bindir / "passenger-config").write_text(
        f"#!/bin/sh\necho 'Phusion Passenger(R) {version}'\n")
    (bindir / "passenger-config").chmod(0o755)
    return str(bindir)


def passenger_run(tmp_path: Path, path: str, version: str = "3.12.1", **kwargs):
    tarball = tmp_path / f"Python-{version}.tgz"
    if not tarball.exists():
        make_fake_tarball(tmp_path, version)
    # A wrong digest stops the script right after the Passenger check: fast.
    script = buildpython.build_script(buildpython.BuildRequest(
        version=version, prefix=str(tmp_path / "p"), source=str(tarball), sha256="0" * 64,
        workdir=str(tmp_path / "w"), **kwargs))
    return run_script(script, env={"PATH": path})


def test_python_3_12_on_an_old_passenger_gets_the_imp_module_planned(tmp_path):
    # Passenger before 6.0.19 imports imp (Python 3.12 removed it): build-python says up front
    # that it will add its compatibility module, and does so after the build (the slow test).
    base = restricted_path(tmp_path, {"passenger-config"})
    old = passenger_run(tmp_path, f"{fake_passenger_config(tmp_path, '6.0.17')}:{base}")
    assert "Passenger 6.0.17 (passenger-config --version) imports 'imp'" in old.stdout
    assert "apps on Python 3.12.1 need wsgi-shim's imp compatibility module there" in old.stdout
    assert "--imp-compat no leaves it out" in old.stdout and "WARNING" not in old.stdout
    new = passenger_run(tmp_path, f"{fake_passenger_config(tmp_path, '6.0.19')}:{base}")
    assert "Passenger 6.0.19 (passenger-config --version) loads apps on Python 3.12.1 without 'imp'" \
        in new.stdout
    assert "no compatibility module needed (--imp-compat yes installs it anyway)" in new.stdout
    assert "wsgi-shim's imp compatibility module" not in new.stdout
    eleven = passenger_run(tmp_path, f"{fake_passenger_config(tmp_path, '6.0.10')}:{base}",
                           version="3.11.9")
    assert "Passenger" not in eleven.stdout and "imp" not in eleven.stdout


def test_imp_compat_yes_and_no_override_the_passenger_version(tmp_path):
    base = restricted_path(tmp_path, {"passenger-config"})
    new = f"{fake_passenger_config(tmp_path, '6.0.19')}:{base}"
    old = f"{fake_passenger_config(tmp_path, '6.0.17')}:{base}"
    forced = passenger_run(tmp_path, new, imp_compat="yes")
    assert "Python 3.12.1 gets wsgi-shim's imp compatibility module (--imp-compat yes)" in forced.stdout
    assert "no compatibility module needed" not in forced.stdout and "Passenger" not in forced.stdout
    refused = passenger_run(tmp_path, old, imp_compat="no")
    assert ("WARNING: Python 3.12.1 needs Passenger 6.0.19 or newer, but this site's Passenger is "
            "6.0.17 (passenger-config --version)") in refused.stdout
    assert "--imp-compat no leaves out wsgi-shim's compatibility module, so the site would fail to " \
        "start" in refused.stdout
    quiet = passenger_run(tmp_path, new, imp_compat="no")
    assert "imp compatibility module: not installed (--imp-compat no)" in quiet.stdout
    assert "WARNING" not in quiet.stdout
    own = passenger_run(tmp_path, old, version="3.11.9", imp_compat="yes")
    assert "Python 3.11.9 has its own imp module: nothing to add" in own.stdout
    with pytest.raises(ValueError, match="auto, yes or no"):
        buildpython.build_script(buildpython.BuildRequest(version="3.12.1", prefix="/p",
                                                          imp_compat="maybe"))


def test_passenger_version_from_config_when_the_host_has_no_passenger_config(tmp_path):
    base = restricted_path(tmp_path, {"passenger-config"})
    proc = passenger_run(tmp_path, base, passenger_version="6.0.18")
    assert "Passenger 6.0.18 (config shim.passenger_version) imports 'imp'" in proc.stdout
    assert "apps on Python 3.12.1 need wsgi-shim's imp compatibility module there" in proc.stdout
    proc = passenger_run(tmp_path, base, passenger_version="6.0.21")
    assert "Passenger 6.0.21 (config shim.passenger_version) loads apps" in proc.stdout
    # An access host without Passenger (it runs on the web servers): installed, since it is
    # inert on a newer Passenger and the site would not start on an older one without it.
    proc = passenger_run(tmp_path, base)
    assert "this host's Passenger version is unknown" in proc.stdout
    assert "set shim.passenger_version" in proc.stdout
    assert "so Python 3.12.1 gets wsgi-shim's imp compatibility module all the same: it is inert " \
        "on a newer Passenger" in proc.stdout


# --- the task: thin, and the same under inv and fab ----------------------------------------


def mock_context(**shim) -> MockContext:
    c = MockContext(run=Result("", exited=0), repeat=True)
    c.config.shim = shim
    return c


def test_task_hands_the_script_to_c_run_with_defaults_from_config():
    c = mock_context(site="/srv/mysite", python_version="3.11.2", passenger_version="6.0.17")
    pytasks.build_python(c)
    command = c.run.call_args[0][0]
    assert command.startswith("sh -c '")
    assert "prefix=/srv/mysite/python-3.11.2" in command
    assert f"expected={buildpython.KNOWN_SHA256['3.11.2']}" in command
    assert "passenger_version=6.0.17" in command and "imp_compat=auto" in command
    assert c.run.call_args[1]["in_stream"] is False


def test_task_flags_override_config():
    c = mock_context(site="/srv/mysite", python_prefix="/opt/py", python_build_dir="/big/tmp")
    pytasks.build_python(c, version="3.12.1", sha256="A" * 64, jobs=3, optimize=True,
                         source="https://mirror.example/Python-3.12.1.tgz")
    command = c.run.call_args[0][0]
    for part in ("version=3.12.1", "prefix=/opt/py", f"expected={'a' * 64}", "jobs=3",
                 "optimize=1", "workdir=/big/tmp", "source=https://mirror.example/Python-3.12.1.tgz",
                 "python_without_imp=3.12"):
        assert part in command, part
    c = mock_context(site="/srv/mysite", imp_compat="no")
    pytasks.build_python(c, imp_compat="YES")
    assert "imp_compat=yes" in c.run.call_args[0][0]
    pytasks.build_python(c)
    assert "imp_compat=no" in c.run.call_args[0][0]


@pytest.mark.parametrize("kwargs,shim,message", [
    ({}, {}, "shim.python_prefix"),
    ({"version": "3.12"}, {"site": "/s"}, "3.11.2"),
    ({"sha256": "xyz"}, {"site": "/s"}, "64 hex"),
    ({"imp_compat": "sometimes"}, {"site": "/s"}, "--imp-compat must be auto, yes or no"),
])
def test_task_refuses_bad_settings_before_running_anything(kwargs, shim, message):
    c = mock_context(**shim)
    with pytest.raises(Exit) as exc:
        pytasks.build_python(c, **kwargs)
    assert exc.value.code == 2 and message in str(exc.value.message)
    assert not c.run.called


def test_task_exit_code_is_the_scripts():
    c = MockContext(run=Result("", exited=3), repeat=True)
    c.config.shim = {"site": "/s"}
    with pytest.raises(Exit) as exc:
        pytasks.build_python(c)
    assert exc.value.code == 3


def real_context(**shim) -> Context:
    config = Config(overrides={"shim": shim, "run": {"in_stream": False}})
    return Context(config)


def test_task_runs_the_build_for_real(fake, capfd):
    c = real_context(site=str(fake.prefix.parent), python_version=VERSION,
                     python_build_dir=str(fake.workdir))
    pytasks.build_python(c, source=str(fake.tarball), sha256=fake.sha)
    out = capfd.readouterr().out
    assert "done in" in out and fake.python.exists()
    pytasks.build_python(c, source=str(fake.tarball), sha256=fake.sha)
    assert "nothing to do" in capfd.readouterr().out
    with pytest.raises(Exit) as exc:
        pytasks.build_python(c, source=str(fake.tarball), sha256="0" * 64, force=True)
    assert exc.value.code == 2


def test_inv_command_line_parses_every_flag(fake):
    # `--version` after the task name is the task's flag, not invoke's own.
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "build-python", "--version", VERSION,
         "--prefix", str(fake.prefix), "--source", str(fake.tarball), "--sha256", fake.sha,
         "--jobs", "2", "--workdir", str(fake.workdir)],
        cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[6/7] make install" in proc.stdout and fake.python.exists()
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "build-python", "--version", VERSION,
         "--prefix", str(fake.prefix), "--source", str(fake.tarball), "--sha256", "1" * 64,
         "--force", "--workdir", str(fake.workdir)],
        cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert proc.returncode == 2 and "sha256 mismatch" in proc.stdout
    assert "Traceback" not in proc.stderr


# --- over real SSH: fab -H user@host ------------------------------------------------------


@pytest.mark.realserver
def test_fab_builds_and_makes_the_venv_on_the_remote_host(sshd, own_repo):
    """As the site user over a non-login SSH shell: the same script, remote paths, remote ~."""
    system_python = "/usr/bin/python3"  # the site user cannot run root's interpreter
    version = subprocess.run([system_python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    root = BASE
    root.mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="build-python-", dir=root))
    user = pwd.getpwnam(SITE_USER)
    try:
        base.chmod(0o755)
        os.chown(base, user.pw_uid, user.pw_gid)
        tarball, _, sha = make_fake_tarball(base, version, python=system_python)
        site = base / "site"
        (site / "www-approot").mkdir(parents=True)
        for path in (site, site / "www-approot"):
            os.chown(path, user.pw_uid, user.pw_gid)
        host = sshd.host(SITE_USER)
        env = sshd.fab_env(PYTHONPATH=str(REPO))
        short = version.rsplit(".", 1)[0]
        flags = ["--version", version, "--source", str(tarball), "--sha256", sha,
                 "--site", str(site), "--jobs", "2"]
        proc = sshd.fab("-H", host, "build-python", *flags, cwd=own_repo, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr + sshd.log_text()
        out = proc.stdout
        assert "[7/7] smoke test" in out and "done in" in out
        python = site / f"python-{version}" / "bin" / f"python{short}"
        assert python.stat().st_uid == user.pw_uid  # built by the site user, not by us
        log = Path(user.pw_dir) / ".cache/wsgi-shim/build-python" / f"python-{version}.log"
        assert f"build log: {log}" in out and log.exists()  # the remote user's ~
        proc = sshd.fab("-H", host, "build-python", *flags, cwd=own_repo, env=env)
        assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stdout

        proc = sshd.fab("-H", host, "venv", "--site", str(site), "--no-upgrade-pip",
                        cwd=own_repo, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"ready: {site}/venv" in proc.stdout
        assert (site / "venv" / "bin" / "python").exists()
        assert (site / "venv").stat().st_uid == user.pw_uid
        proc = sshd.fab("-H", host, "venv", "--site", str(site), "--path",
                        str(site / "www-approot" / "venv"), cwd=own_repo, env=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "inside the app root" in proc.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- the real thing ------------------------------------------------------------------------


def real_tarball() -> Path:
    return pythons.source_tarball("WSGI_SHIM_PYTHON_TARBALL", "3.11.2")


@pytest.mark.slow
def test_real_build_of_cpython_3_11_2_then_venv_then_no_op(tmp_path, capfd):
    tarball = real_tarball()
    site = tmp_path / "site"
    (site / "www-approot").mkdir(parents=True)
    c = real_context(site=str(site), python_version="3.11.2",
                     python_build_dir=str(tmp_path / "work"))
    started = time.monotonic()
    pytasks.build_python(c, source=str(tarball), jobs=2)  # the built-in digest verifies it
    build_seconds = time.monotonic() - started
    out = capfd.readouterr().out
    python = site / "python-3.11.2" / "bin" / "python3.11"
    assert "done in" in out, out
    check = subprocess.run(
        [str(python), "-c", ("import ssl, sqlite3, ctypes, venv, zlib, sys; "
                             "print(sys.version.split()[0], ssl.OPENSSL_VERSION)")],
        capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("3.11.2 ")

    pytasks.venv(c)
    out = capfd.readouterr().out
    venv_python = site / "venv" / "bin" / "python"
    assert f"ready: {site / 'venv'}" in out
    probe = subprocess.run(
        [str(venv_python), "-c", "import sys, ssl, sqlite3; print(sys.prefix, sys.base_prefix)"],
        capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(site / "venv"), str(site / "python-3.11.2")]
    pip = subprocess.run([str(venv_python), "-m", "pip", "--version"], capture_output=True,
                         text=True, check=False)
    assert pip.returncode == 0, pip.stderr

    installed = {p: p.stat().st_mtime_ns for p in (site / "python-3.11.2" / "bin").iterdir()}
    started = time.monotonic()
    pytasks.build_python(c, source=str(tarball), jobs=2)
    again_seconds = time.monotonic() - started
    assert "nothing to do" in capfd.readouterr().out
    # The second run rebuilt and reinstalled nothing (timed in bench/, not asserted here).
    assert {p: p.stat().st_mtime_ns for p in (site / "python-3.11.2" / "bin").iterdir()} == installed
    with capfd.disabled():
        print(f"\nreal CPython 3.11.2 build: {build_seconds:.0f} s; second run: "
              f"{again_seconds:.2f} s")


def test_digest_without_sha256sum_falls_back_to_python3(fake, tmp_path):
    path = restricted_path(tmp_path, {"sha256sum", "shasum", "openssl"})
    proc = build(fake, sha256="0" * 64, env={"PATH": path})
    assert proc.returncode == 2, proc.stdout
    assert f"got      {fake.sha}" in proc.stdout


def test_the_table_knows_recent_releases_3_11_to_3_13():
    # FACTS.md: python.org's Python-3.11.2.tgz, checked byte for byte against Debian's copy.
    assert buildpython.KNOWN_SHA256["3.11.2"] == (
        "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849")
    for version, digest in buildpython.KNOWN_SHA256.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest), version
    assert len(set(buildpython.KNOWN_SHA256.values())) == len(buildpython.KNOWN_SHA256)
    assert buildpython.known_releases() == "3.11.0-3.11.14, 3.12.0-3.12.12, 3.13.0-3.13.9"
    for minor, last in ((11, 14), (12, 12), (13, 9)):
        for micro in range(last + 1):
            assert f"3.{minor}.{micro}" in buildpython.KNOWN_SHA256


@pytest.mark.parametrize("version", ["3.12.7", "3.13.2"])
def test_a_known_3_12_or_3_13_release_needs_no_sha256_flag(tmp_path, version):
    # A fake tarball named like the release: the table's digest is what refuses it.
    tarball, calls, _ = make_fake_tarball(tmp_path, version)
    proc = run_script(buildpython.build_script(buildpython.BuildRequest(
        version=version, prefix=str(tmp_path / "p"), source=str(tarball),
        workdir=str(tmp_path / "w"), passenger_version="6.0.19")))
    assert proc.returncode == 2, proc.stdout
    assert f"expected {buildpython.KNOWN_SHA256[version]}" in proc.stdout
    assert "no known sha256" not in proc.stdout and not calls.exists()


def test_build_python_help_names_the_known_releases():
    proc = subprocess.run([sys.executable, "-m", "invoke", "--help", "build-python"], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "3.11.0-3.11.14, 3.12.0-3.12.12, 3.13.0-3.13.9" in text
    assert "Example: inv build-python" in text
