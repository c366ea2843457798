"""Fixtures for the task tests: a real sshd, a site repository of one's own (the two-line
tasks.py / fabfile.py), and the preview server as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.accounts import SITE_USER, ensure_accounts, is_root
from tests.support.apache import http_get
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

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str = "/"):
        return http_get(self.url.rstrip("/") + path, timeout=10)


@contextmanager
def preview(cmd: list[str], port: int, log: Path, cwd: Path | None = None,
            timeout: float = 60) -> Iterator[Preview]:
    """Start CMD (which must serve on 127.0.0.1:PORT) in its own session, wait until it answers,
    and stop the whole session afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=command_env(), stdin=subprocess.DEVNULL,
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
