#!/usr/bin/env python3
"""Screenshots of every page wsgi-shim serves, at desktop and phone width, in headless Chromium.

    python3 scripts/screenshots.py [OUT_DIR]        # default: docs/screenshots/

Renders the pages with wsgi-shim's own code (shim.runtime.pages, fed with a real failing import,
a real config.toml typo and a real request traceback), serves them on 127.0.0.1 and drives
Debian's `chromium` through the DevTools protocol over a pipe (--remote-debugging-pipe; standard
library only). A phone is emulated with Emulation.setDeviceMetricsOverride (390 x 844 CSS px,
mobile: a narrow desktop window is not a phone, it ignores <meta name="viewport">). For each
page it also reports document.documentElement.scrollWidth: more than the viewport's width
means the visitor has to scroll sideways. tests/e2e/test_pages_browser.py uses the same driver.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
CHROMIUM_FLAGS = ["--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--remote-debugging-pipe"]


class Chromium:
    """Headless Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated
    JSON messages), one page target attached in flat mode."""

    def __init__(self, binary: str | None = None) -> None:
        binary = binary or shutil.which("chromium") or shutil.which("chromium-browser")
        if not binary:
            raise RuntimeError("chromium not found: apt-get install chromium")
        self.profile = tempfile.mkdtemp(prefix="wsgi-shim-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(
            [binary, *flags, "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=_pipe_fds(to_child_r, from_child_w),
            pass_fds=(3, 4, to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.session = ""
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]
        self.send("Page.enable")

    def send(self, method: str, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, event: str) -> dict:
        while True:
            reply = self._read()
            if reply.get("method") == event:
                return reply.get("params", {})

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def render(self, url: str, device: dict) -> tuple[bytes, int, int]:
        """Load url as on ``device``; return (full-page PNG, scrollWidth, viewport width)."""
        self.send("Emulation.setDeviceMetricsOverride", **device)
        self.send("Emulation.setTouchEmulationEnabled", enabled=device["mobile"])
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        metrics = self.send("Runtime.evaluate", returnByValue=True, expression=(
            "[document.documentElement.scrollWidth, window.innerWidth,"
            " document.documentElement.scrollHeight]"))["result"]["value"]
        scroll_width, inner_width, height = metrics
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": device["width"],
                               "height": max(height, device["height"]), "scale": 1})
        return base64.b64decode(shot["data"]), int(scroll_width), int(inner_width)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pipe_fds(read_end: int, write_end: int):
    def setup() -> None:  # in the child: our pipe ends become fds 3 and 4, as Chromium expects
        import fcntl

        high_r = fcntl.fcntl(read_end, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4 first
        high_w = fcntl.fcntl(write_end, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)
    return setup


@contextlib.contextmanager
def serve_pages(pages: dict[str, tuple[str, bytes]]) -> Iterator[str]:
    """Serve {name: (status line, HTML bytes)} at http://127.0.0.1:PORT/NAME; yields the base."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            status, body = pages.get(self.path.lstrip("/"), ("404 Not Found", b"no such page"))
            self.send_response(int(status.split()[0]))
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# -- the pages, made by wsgi-shim's own code ------------------------------------------------------

BROKEN_SETTINGS = '''\
"""Settings of the example shop."""
import os

DEBUG = False
ALLOWED_HOSTS = ["shop.example.org"]
DATABASE_URL = os.environ["DATABASE_URL"]  # set in config.toml [environment]
TIME_ZONE = "Europe/Zurich"
'''

CONFIG_WITH_TYPO = '''\
[passenger]
passenger_user = "alice"
passenger_group = "shopteam"
passenger_python = "/home/alice/shop/venv/bin/python"

[wsgi]
app = "shop.wsgi.application"
chdri = "src"

[enviroment]
SHOP_MODE = "live"
'''


VIEWS = '''\
def checkout(cart):
    total = sum(item["price"] * item["quantity"] for item in cart["items"])
    return f"{total:.2f}"


def application(environ, start_response):
    cart = {"items": [{"price": 12.5, "quantity": 2}, {"price": 3.0}]}
    body = checkout(cart).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
'''


def sample_pages(workdir: Path) -> dict[str, tuple[str, bytes]]:
    """Every page, as wsgi-shim renders it for a real failure: {name: (status, html bytes)}."""
    sys.path.insert(0, str(REPO))
    from shim.runtime import pages
    from shim.runtime.config import Config, parse_config
    from shim.runtime.loader import describe_import_failure
    from shim.runtime.redact import Redactor

    approot = workdir / "www-approot"
    (approot / "shop").mkdir(parents=True, exist_ok=True)
    (approot / "shop" / "__init__.py").write_text("")
    (approot / "shop" / "settings.py").write_text(BROKEN_SETTINGS)
    (approot / "shop" / "views.py").write_text(VIEWS)
    config_file = approot / "config.toml"
    _, problems = parse_config(CONFIG_WITH_TYPO, config_file, approot)
    cfg = Config(app_root=approot, file=config_file, module="shop.settings", attribute="application")
    sys.path.insert(0, str(approot))
    try:
        import importlib

        try:
            importlib.import_module("shop.settings")
        except KeyError as exc:
            exc.__traceback__ = exc.__traceback__.tb_next  # this script's frame: not the site's
            problems.append(describe_import_failure(exc, cfg, Redactor()))
        trace = _real_traceback(importlib.import_module("shop.views").application)
    finally:
        sys.path.remove(str(approot))
    facts = {"user": "alice", "group": "shopteam", "python": "/home/alice/shop/venv/bin/python (3.11.2)",
             "app root": str(approot), "pid": "48213", "time": "2026-11-25 14:03:51 UTC",
             "wsgi-shim": "0.2.0"}
    start = pages.error_page(problems, facts, "3f9a1c2b7d", when=1_795_615_431)
    detail = ("error id 8c41d09e2a: GET /cart/checkout?step=2 HTTP/1.1 from 203.0.113.7",
              "Host: shop.example.org\nUser-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)\n"
              + trace)
    return {
        "maintenance": ("503 Service Unavailable", pages.maintenance_page(None, 300, 1_795_614_400).body),
        "start-error-visitor": (start.status, start.body),
        "start-error-owner": (start.status, start.full),
        "request-error-visitor": ("500 Internal Server Error",
                                  pages.request_error_page("8c41d09e2a", when=1_795_615_502)),
        "request-error-owner": ("500 Internal Server Error",
                                pages.request_error_page("8c41d09e2a", detail, when=1_795_615_502)),
    }


def _real_traceback(app) -> str:
    """The traceback of a real failing request, without this script's frame (as the middleware
    leaves out its own)."""
    import traceback

    try:
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/cart/checkout"}, lambda *a: None)
    except KeyError as exc:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
    return ""


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    # A fixed place, so that the pictures do not change with a random temporary name.
    work = Path(tempfile.gettempdir()) / "wsgi-shim-screenshots" / "shop"
    shutil.rmtree(work.parent, ignore_errors=True)
    try:
        with Chromium() as browser:
            _shoot(browser, sample_pages(work), out)
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
    print(f"written to {out}")
    return 0


def _shoot(browser: Chromium, rendered: dict[str, tuple[str, bytes]], out: Path) -> None:
    with serve_pages(rendered) as base:
        for name in rendered:
            for label, device in (("desktop", DESKTOP), ("phone", PHONE)):
                png, scroll_width, width = browser.render(base + name, device)
                (out / f"{name}-{label}.png").write_bytes(png)
                fits = "fits" if scroll_width <= width else f"SCROLLS SIDEWAYS ({scroll_width} px)"
                print(f"{name:24} {label:8} {width:5} px wide: {fits}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
