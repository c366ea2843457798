"""Issue 19 items 3 and 4 through real Apache + Passenger, as the site's user `shimsite`.

Found by the review: (a) cookies whose values were the visitor's own address and words such as
`ValueError` blanked those out of the owner's entry; (b) 53 requests with 77 KiB of headers each
pushed the incident out of app.log and all its backups in about a second. Here a visitor does
both over HTTP; the owner, with `wsgi-shim logs` as the site's user, still finds the incident and
sees who asked what and what failed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.accounts import PROJECT_GROUP, SITE_USER
from tests.support.apache import ApacheServer, http_get, poll
from tests.support.sites import make_site, shared_venv, wsgi_shim

pytestmark = pytest.mark.realserver

APP = '''\
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/incident":
        raise RuntimeError("the incident the owner is looking for")
    if path == "/flood":
        raise ValueError("flooded " + environ.get("QUERY_STRING", ""))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''
FLOOD_REQUESTS = 53
FILLERS = {f"X-Filler-{i}": chr(65 + i) * 7700 for i in range(10)}  # 77 KiB, under Apache's 8190
RESET_TOKEN = "rst-e2e-Kq82Hv0Lm3"


def error_id(body: str) -> str:
    m = re.search(r'class="error-id">([0-9a-f]+)<', body)
    assert m, body[:2000]
    return m.group(1)


def test_a_visitor_can_neither_blank_nor_flood_away_the_evidence(apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("e2e-bounded", {"boundedapp.py": APP}, app="boundedapp.application")
    url = apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                       group=PROJECT_GROUP, python=shared_venv() / "bin" / "python")
    poll(url + "/", lambda r: r.status == 200, timeout=30)

    incident = http_get(url + "/incident")
    assert incident.status == 500
    incident_id = error_id(incident.body)
    # (a) cookies chosen to erase the request line, the exception's type and the frames.
    cookies = "; ".join(f"c{i}={v}" for i, v in enumerate(
        ["127.0.0.1", "GET", "/flood", "ValueError", "Traceback", "boundedapp", "HTTP/1.1", "bounded-UA/7"]))
    erase = http_get(url + f"/flood?reset_token={RESET_TOKEN}",
                     headers={"Cookie": cookies, "User-Agent": "bounded-UA/7"})
    erase_id = error_id(erase.body)
    # (b) the flood.
    for _ in range(FLOOD_REQUESTS):
        assert http_get(url + "/flood", headers=FILLERS).status == 500

    found = wsgi_shim("logs", str(site.site), "--id", incident_id)
    assert found.returncode == 0, found.stdout + found.stderr
    assert "RuntimeError: the incident the owner is looking for" in found.stdout

    shown = wsgi_shim("logs", str(site.site), "--id", erase_id)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    text = shown.stdout
    assert "GET /flood?reset_token=[redacted] HTTP/1.1 from 127.0.0.1" in text, text
    assert "User-Agent: bounded-UA/7" in text and 'boundedapp.py", line' in text, text
    assert "ValueError: flooded reset_token=[redacted]" in text and RESET_TOKEN not in text, text
    assert "Cookie: c0=[redacted]; c1=[redacted]" in text

    log_dir = site.approot / "logs"
    everything = "".join(p.read_text(errors="replace") for p in log_dir.glob("app.log*")
                         if not p.name.endswith(".lock"))
    assert " bytes more)" in everything and "more headers not logged" in everything
    summary = re.search(r"shim\.request: \d+ more like error id [0-9a-f]+ \(ValueError at ", everything)
    assert summary, everything[-3000:]
    # 53 x 77 KiB used to be 4 MiB; now a few full entries of about 10 KiB per process.
    assert len(everything) < 400_000, len(everything)
