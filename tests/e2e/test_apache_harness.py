"""The Apache harness itself: it must leave no process behind and explain failed starts."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from tests.e2e.rawsite import GROUP, USER, make_raw_site
from tests.support.apache import ApacheError, ApacheServer, _alive, _descendants, http_get, poll

pytestmark = pytest.mark.realserver


def _add(server: ApacheServer, top: Path, **kw: object) -> str:
    return server.add_site(top.name, top / "www-approot", top / "www-docroot", user=USER,
                           group=GROUP, python=top / "venv" / "bin" / "python", **kw)


def test_stop_leaves_no_apache_passenger_or_app_process(e2e_dir: Path) -> None:
    top = make_raw_site(e2e_dir / "raw", "stray-check")
    server = ApacheServer(e2e_dir / "ha")
    _add(server, top)
    server.start()
    url = server.url  # after start(): a busy port would have been replaced
    try:
        poll(url + "/", lambda r: r.status == 200, timeout=30)
        master = server._pid
        assert master is not None
        family = _descendants(master) | {master}
        app_pid = int(http_get(url + "/").body.split()[0].removeprefix("pid="))
        assert app_pid in family  # the app is spawned under Apache -> watchdog -> core
        assert len(family) >= 4
    finally:
        server.stop()
    assert not [p for p in family if _alive(p)]
    assert not server.running()


def test_failed_start_reports_why(e2e_dir: Path) -> None:
    top = make_raw_site(e2e_dir / "raw", "bad-config")
    server = ApacheServer(e2e_dir / "hb")
    _add(server, top, extra="NoSuchDirective on")
    with pytest.raises(ApacheError) as info:
        server.start()
    message = str(info.value)
    assert "NoSuchDirective" in message
    assert "apache2 -k start failed" in message
    assert not server.running()


def test_too_deep_workdir_is_refused_before_starting(e2e_dir: Path) -> None:
    # Passenger's socket paths would not fit in sun_path: Apache would run without Passenger.
    server = ApacheServer(e2e_dir / ("d" * 80))
    server.add_site("x", e2e_dir / "nowhere", e2e_dir / "nowhere", user=USER, group=GROUP,
                    python="/usr/bin/python3")
    with pytest.raises(ApacheError, match="too deep"):
        server.start()
    assert not server.pid_file.exists()


def test_busy_port_is_replaced_at_start_and_at_reload(e2e_dir: Path) -> None:
    top = make_raw_site(e2e_dir / "raw", "busy-port")
    server = ApacheServer(e2e_dir / "hp")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        _add(server, top, port=busy)
        server.start()
        try:
            assert server.sites[top.name].port != busy
            poll(server.site_url(top.name) + "/", lambda r: r.status == 200, timeout=30)
            # The same at a reload, where a failed bind stops Apache altogether.
            url = server.serve("second", top / "www-approot", top / "www-docroot", user=USER,
                               group=GROUP, python=top / "venv" / "bin" / "python", port=busy)
            assert not url.endswith(f":{busy}")
            poll(url + "/", lambda r: r.status == 200, timeout=30)
            poll(server.site_url(top.name) + "/", lambda r: r.status == 200, timeout=30)
        finally:
            server.stop()


def test_stop_after_master_crash_leaves_nothing(e2e_dir: Path) -> None:
    """A crashed master leaves workers (holding the ports) and Passenger behind: stop() finds
    them by the config file they were started with."""
    top = make_raw_site(e2e_dir / "raw", "crash")
    server = ApacheServer(e2e_dir / "hc")
    _add(server, top)
    server.start()
    try:
        poll(server.url + "/", lambda r: r.status == 200, timeout=30)
        master = server._pid
        assert master is not None
        family = _descendants(master)
        os.kill(master, signal.SIGKILL)
        server.pid_file.unlink()
    finally:
        server.stop()
    assert family and not [p for p in family if _alive(p)]
