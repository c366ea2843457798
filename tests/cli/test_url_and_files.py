"""Issue 19 item 7 (and item 4's HTTP reads), with the CLI as a subprocess run by the site's user:
a --url with credentials is refused and never printed; every HTTP read of ours is size-capped;
`restart` and `maint` on a read-only file system name the file they failed on (it said
`cannot touch None`)."""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sites import make_site, wsgi_shim

pytestmark = pytest.mark.realserver

PASSWORD = "Pw-in-url-Zx81q"
URLS = [f"https://bob:{PASSWORD}@127.0.0.1:9/", f"http://{PASSWORD}@127.0.0.1:9/", f"bob:{PASSWORD}@127.0.0.1/"]


def test_a_url_with_credentials_is_refused_and_never_printed():
    site = make_site("url-creds")
    for url in URLS:
        for args in (["restart", str(site.site), "--wait", "1", "--url", url],
                     ["status", str(site.site), "--url", url],
                     ["deploy", str(site.site), str(site.approot), "--wait", "1", "--url", url]):
            out = wsgi_shim(*args, timeout=120)
            text = out.stdout + out.stderr
            assert out.returncode == 2, (args, text)
            assert "user name or password" in text and "refused" in text, text
            assert PASSWORD not in text and "Traceback" not in text, text
    assert not site.restart_txt.exists() or site.restart_txt.stat().st_size == 0


class _Endless(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        chunk = b"<p>" + b"x" * 65536 + b"</p>"
        with contextlib.suppress(OSError):
            for _ in range(100_000):  # 6.5 GB if read to the end
                self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def endless_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_status_url_reads_a_bounded_answer():
    site = make_site("url-endless")
    with endless_server() as url:
        out = wsgi_shim("status", str(site.site), "--url", url, timeout=60)
    assert "Traceback" not in out.stderr, out.stderr
    assert f"{url} answers 200" in out.stdout + out.stderr, out.stdout + out.stderr


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """PATH bind-mounted read-only onto itself (a full or read-only file system, as seen by the
    site's user)."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_restart_maint_and_deploy_on_a_read_only_file_system_name_the_file():
    site = make_site("ro-fs")
    assert site.restart_txt.exists()
    source = site.site / "src"
    source.mkdir(mode=0o755)
    (source / "app.py").write_text("def application(environ, start_response):\n    pass\n")
    (source / "app.py").chmod(0o644)
    with read_only(site.site):
        restart = wsgi_shim("restart", str(site.site), timeout=60)
        maint = wsgi_shim("maint", "on", str(site.site), timeout=60)
        deploy = wsgi_shim("deploy", str(site.site), str(source), "--init", timeout=300)
    assert restart.returncode == 1
    assert f"cannot touch {site.restart_txt}: Read-only file system" in restart.stderr, restart.stderr
    assert maint.returncode == 1
    assert f"{site.maint_txt}: Read-only file system" in maint.stderr, maint.stderr
    assert deploy.returncode == 1
    assert f"{site.site / 'releases'}: Read-only file system" in deploy.stderr, deploy.stderr
    for out in (restart, maint, deploy):
        assert "None" not in out.stderr and "Traceback" not in out.stderr
