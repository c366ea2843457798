"""Every page a site serves, rendered in real headless Chromium as a phone (390 CSS px, emulated
through the DevTools protocol) and a desktop: nothing scrolls sideways.

The pages come from real sites loaded as Passenger loads them (maintenance, start-up error as a
visitor and as the opted-in owner, request error as both); scripts/screenshots.py drives the
browser.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.support.sites import load_like_passenger, make_site, opt_in_owner

pytestmark = pytest.mark.realserver

REPO = Path(__file__).resolve().parents[2]
LONG = "x" * 300  # an unbreakable word, as long paths and tokens are
BROKEN = ("import os\n\n\n" f"SETTING_{LONG[:120]} = os.environ['DATABASE_URL_{LONG}']\n")
FAILING_VIEW = ("def application(environ, start_response):\n"
                f"    raise ValueError('view failed: {LONG}')\n")


def _screenshots():
    spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _served(site, headers=None):
    response = load_like_passenger(site, [{"path": "/", "headers": headers or {}}]).response
    return response.status, response.body.encode(), response.kind


def real_pages() -> dict[str, tuple[str, bytes]]:
    pages = {}
    maint = make_site("shot-maint", maint=True)
    status, body, kind = _served(maint)
    assert kind == "maintenance"
    pages["maintenance"] = (status, body)

    start = make_site("shot-start", app_source={"app.py": BROKEN})
    owner = opt_in_owner(start)
    for name, headers in (("start-error-visitor", None), ("start-error-owner", owner)):
        status, body, kind = _served(start, headers)
        assert kind == "error"
        pages[name] = (status, body)
    assert b"DATABASE_URL" in pages["start-error-owner"][1]  # the owner's page, with the source line

    request = make_site("shot-request", app_source={"app.py": FAILING_VIEW})
    owner = opt_in_owner(request)
    for name, headers in (("request-error-visitor", None), ("request-error-owner", owner)):
        status, body, kind = _served(request, headers)
        assert kind == "app-error"
        pages[name] = (status, body)
    assert b"Traceback" in pages["request-error-owner"][1]
    return pages


def test_every_page_fits_a_phone_and_a_desktop(tmp_path: Path):
    shots = _screenshots()
    pages = real_pages()
    assert len(pages) == 5
    with shots.Chromium() as browser, shots.serve_pages(pages) as base:
        for name in pages:
            for device in (shots.PHONE, shots.DESKTOP):
                png, scroll_width, inner_width = browser.render(base + name, device)
                assert png.startswith(b"\x89PNG"), name
                # Without <meta name="viewport"> a phone lays the page out 980 px wide.
                assert inner_width == device["width"], (name, inner_width)
                assert scroll_width <= device["width"], (name, device["width"], scroll_width)
