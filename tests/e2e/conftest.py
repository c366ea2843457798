"""Fixtures for end-to-end tests through a real Apache 2.4 + Phusion Passenger.

One private Apache serves the whole session (tests.support.apache); each test adds its site with
`apache.serve(...)`, which starts Apache the first time and restarts it (SIGHUP) afterwards.
Everything Apache writes lives under one fresh directory below E2E_BASE; it must be reachable by
www-data and the site user, so it cannot be pytest's tmp_path (0700, root).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.accounts import ensure_accounts
from tests.support.apache import ApacheServer, apache_available

# Short on purpose: Passenger's Unix socket paths under it must stay below 108 bytes.
E2E_BASE = Path(os.environ.get("WSGI_SHIM_E2E_DIR", "/srv/wsgi-shim-e2e"))


def _require_real_server() -> None:
    reason = apache_available()
    if reason is None:
        return
    if os.geteuid() != 0:
        pytest.skip(f"real Apache + Passenger: {reason}")
    # As root (CI) a missing Apache is a broken setup, not a reason to pass quietly.
    pytest.fail(f"real Apache + Passenger unavailable although running as root: {reason}")


def _reap_abandoned_sessions() -> None:
    """Stop the Apache of sessions whose pytest died (killed, not interrupted) and remove them.

    Also Apaches still running with the config of a session directory already removed.
    """
    sessions = set(E2E_BASE.glob("s-*")) | _sessions_with_running_apache()
    for old in sessions:
        try:
            owner = int((old / "owner.pid").read_text())
        except (OSError, ValueError):
            owner = None
        if owner is not None and _pid_alive(owner):
            continue  # another test session running right now
        if owner is None and old.exists() and time.time() - old.stat().st_mtime < 60:
            continue  # just being created by another session
        try:
            ApacheServer(old / "apache").stop()
        except Exception as exc:  # noqa: BLE001 - never fail this session for an old one
            print(f"e2e: could not stop the Apache of abandoned {old}: {exc}")
        shutil.rmtree(old, ignore_errors=True)


def _sessions_with_running_apache() -> set[Path]:
    """Session directories named in the -f argument of a running apache2."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        for arg in args:
            conf = Path(arg)
            if conf.name == "httpd.conf" and conf.parent.name == "apache" and \
                    conf.parent.parent.parent == E2E_BASE and conf.parent.parent.name.startswith("s-"):
                found.add(conf.parent.parent)
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def e2e_dir() -> Iterator[Path]:
    """A fresh world-searchable directory for this session (several sessions may run at once)."""
    _require_real_server()
    ensure_accounts()  # shimsite (in project group shimproj) owns every test site
    E2E_BASE.mkdir(parents=True, exist_ok=True)
    os.chmod(E2E_BASE, 0o755)
    _reap_abandoned_sessions()
    path = Path(tempfile.mkdtemp(prefix="s-", dir=E2E_BASE))
    os.chmod(path, 0o755)
    (path / "owner.pid").write_text(str(os.getpid()))
    yield path
    if not os.environ.get("WSGI_SHIM_E2E_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def apache(e2e_dir: Path) -> Iterator[ApacheServer]:
    """The session's Apache; not started until the first apache.serve(...)."""
    server = ApacheServer(e2e_dir / "apache")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def site_venv(e2e_dir: Path) -> Path:
    """The shared site venv (built or refreshed once, before any test starts its clock)."""
    from tests.support.sites import shared_venv

    return shared_venv()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach what Apache and Passenger logged to a failing e2e test's report."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("apache")
    if report.failed and isinstance(server, ApacheServer) and server.error_log.exists():
        tail = "\n".join(server.error_log_text(since_start=False).splitlines()[-80:])
        report.sections.append(("Apache error log (tail)", tail))
