"""Fixtures for the task tests: a real sshd, a site repository of one's own (the two-line
tasks.py / fabfile.py), and the preview server as a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.accounts import SITE_USER, ensure_accounts, gid, is_root, uid
from tests.support.apache import http_get, poll
from tests.support.sshd import SshServer, free_port, sshd_available

REPO = Path(__file__).resolve().parents[2]

TASKS_PY = 'from shim.tasks import ns\n\nns.configure({"shim": {"approot": "www-approot"}})\n'


def command_env(**extra: str) -> dict[str, str]:
    """Environment for `inv` / `fab` / `wsgi-shim` subprocesses: this checkout importable
    whether or not it is pip-installed, no colour codes in the output."""
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    env.pop("INVOKE_SHIM_SITE", None)
    env.pop("FABRIC_SHIM_SITE", None)
    env.update(extra)
    return env


@pytest.fixture
def own_repo(tmp_path: Path) -> Path:
    """A site repository of one's own that uses the tasks without copying them."""
    (tmp_path / "tasks.py").write_text(TASKS_PY)
    (tmp_path / "fabfile.py").write_text(TASKS_PY)
    return tmp_path


def inv(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd,
                          env=env or command_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def tasks_venv() -> Path:
    """A developer's environment as docs/tasks.md sets it up, for the site's user:
    pip install 'wsgi-shim[tasks]' (this checkout's wheel) into a venv of its own."""
    from tests.support.sites import BASE, SYSTEM_PYTHON, _lock, run_as_site, shared_venv

    shared_venv()  # builds this checkout's wheel into BASE/wheels
    # Other test sessions may be rebuilding BASE/wheels: take a copy under their lock.
    with _lock("venv"):
        built = next((BASE / "wheels").glob("*.whl"))
        wheels = Path(tempfile.mkdtemp(prefix="tasks-wheel-", dir=BASE))
        wheel = wheels / built.name
        shutil.copy(built, wheel)
    wheels.chmod(0o755)
    wheel.chmod(0o644)
    venv = BASE / "tasks-venv"
    with _lock("tasks-venv"):
        if not (venv / ".packages-ok").exists():
            shutil.rmtree(venv, ignore_errors=True)
            venv.mkdir(mode=0o755)
            os.chown(venv, uid(SITE_USER), gid())
            for cmd in ([SYSTEM_PYTHON, "-m", "venv", str(venv)],
                        [str(venv / "bin/pip"), "install", "-q", f"{wheel}[tasks]"]):
                done = run_as_site(cmd)
                assert done.returncode == 0, done.stdout + done.stderr
            (venv / ".packages-ok").touch()
        done = run_as_site([str(venv / "bin/pip"), "install", "-q", "--no-deps",
                            "--force-reinstall", str(wheel)])
        assert done.returncode == 0, done.stdout + done.stderr
    shutil.rmtree(wheels, ignore_errors=True)
    return venv


@pytest.fixture
def site_repo(tasks_venv: Path) -> Path:
    """The site user's own repository with the two-line tasks.py and fabfile.py."""
    from tests.support.sites import BASE

    (BASE / "repos").mkdir(mode=0o755, exist_ok=True)
    repo = Path(tempfile.mkdtemp(prefix="repo-", dir=BASE / "repos"))
    for name in ("tasks.py", "fabfile.py"):
        (repo / name).write_text(TASKS_PY)
    for path in (repo, repo / "tasks.py", repo / "fabfile.py"):
        os.chown(path, uid(SITE_USER), gid())
    return repo


def inv_as_site(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`inv ARGS` run by the site's user from that user's tasks venv."""
    from tests.support.sites import BASE, run_as_site

    return run_as_site([str(BASE / "tasks-venv/bin/inv"), *args], cwd=repo, env=env)


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    reason = sshd_available()
    if reason is not None:
        if not is_root():
            pytest.skip(f"real sshd: {reason}")
        pytest.fail(f"real sshd unavailable although running as root: {reason}")
    ensure_accounts()
    server = SshServer.start_new()
    try:
        server.authorize(SITE_USER)
        yield server
    finally:
        server.cleanup()


class Preview:
    """A running `wsgi-shim serve` / `demo` / `inv serve` subprocess and its output."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log
        self.cookie = ""  # the preview's cookie, from the URL it printed (see login())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def owner_url(self, timeout: float = 30) -> str:
        """The URL with the token that the preview printed for its owner."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(r"http://\S+\?wsgi-shim-preview=[\w-]+", self.output())
            if found:
                return found.group(0)
            if time.monotonic() > deadline:
                raise AssertionError(f"no owner URL printed:\n{self.output()}")
            time.sleep(0.2)

    def login(self) -> None:
        """Open the printed URL as the owner's browser does: keep the cookie it sets."""
        r = http_get(self.owner_url(), timeout=10)
        assert r.status == 303 and "set-cookie" in r.headers, (r.status, r.headers)
        self.cookie = r.headers["set-cookie"].split(";")[0]

    def poll(self, until, timeout: float = 20):
        """poll() as the owner's browser."""
        return poll(self.url, until, timeout=timeout, headers={"Cookie": self.cookie} if self.cookie else None)

    def get(self, path: str = "/", owner: bool = True):
        headers = {"Cookie": self.cookie} if owner and self.cookie else {}
        return http_get(self.url.rstrip("/") + path, headers=headers, timeout=10)


@contextmanager
def preview(cmd: list[str], port: int, log: Path, cwd: Path | None = None,
            timeout: float = 60, env: dict[str, str] | None = None, login: bool = True) -> Iterator[Preview]:
    """Start CMD (which must serve on 127.0.0.1:PORT) in its own session, wait until it answers,
    and stop the whole session afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env or command_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Preview(proc, f"http://127.0.0.1:{port}/", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{cmd} exited {proc.returncode}:\n{server.output()}")
            try:
                server.get()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{cmd} did not answer:\n{server.output()}") from None
                time.sleep(0.2)
        if login:
            server.login()
        yield server
    finally:
        stop_session(proc)


def stop_session(proc: subprocess.Popen) -> None:
    """SIGTERM the process group PROC leads (its app processes included), SIGKILL if need be."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(15)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


@pytest.fixture
def port() -> int:
    return free_port()
