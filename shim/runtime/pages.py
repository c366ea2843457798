"""The pages wsgi-shim serves instead of the app: maintenance and start-up error.

Every value that goes into HTML passes through html.escape. Each page is a tiny WSGI app
whose body is rendered once, at start-up; serving it costs one start_response call.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime, timezone

from shim.runtime.problems import Problem

STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#222}h1{font-size:1.6rem}li{margin-bottom:1.2rem}.where{color:#555}.fix{background:#eef6ee;
padding:.3rem .5rem}pre{background:#f4f4f4;padding:.6rem;overflow-x:auto;font-size:.85rem}
table{border-collapse:collapse}td{padding:.1rem .8rem .1rem 0;vertical-align:top}"""


def _document(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"robots\" content=\"noindex\">\n<title>{html.escape(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n").encode("utf-8")


class StaticPage:
    """A WSGI app that answers every request with the same status, headers and body."""

    def __init__(self, status: str, body: bytes, kind: str, extra_headers: Iterable[tuple[str, str]] = ()):
        self.status = status
        self.body = body
        self.kind = kind
        self.headers = [("Content-Type", "text/html; charset=utf-8"),
                        ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"),
                        ("X-Wsgi-Shim", kind), *extra_headers]

    def __call__(self, environ, start_response):
        start_response(self.status, list(self.headers))
        if environ.get("REQUEST_METHOD") == "HEAD":
            return [b""]
        return [self.body]


def problem_html(problem: Problem) -> str:
    e = html.escape
    detail = f"\n<pre>{e(problem.detail)}</pre>" if problem.detail else ""
    label = "" if problem.blocking else f"{e(problem.severity.capitalize())}: "
    return (f"<li>{label}<strong>{e(problem.what)}</strong> <code>[{e(problem.code)}]</code>\n"
            f"<div class=\"where\">Where: {e(problem.where)}</div>\n"
            f"<div class=\"fix\">How to fix: {e(problem.fix)}</div>{detail}</li>")


def error_page(problems: list[Problem], facts: dict[str, str]) -> StaticPage:
    """The start-up error page: every problem with what, where and how to fix it."""
    e = html.escape
    count = sum(p.blocking for p in problems)
    items = "\n".join(problem_html(p) for p in problems)
    rows = "\n".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in facts.items())
    body = (f"<h1>This site could not start</h1>\n"
            f"<p>wsgi-shim found {count} problem{'s' if count != 1 else ''} while starting the site. "
            f"Fix {'them' if count != 1 else 'it'}, then run <code>wsgi-shim restart SITE</code> "
            f"(or <code>inv restart</code>).</p>\n<ol>\n{items}\n</ol>\n"
            f"<h2>Process</h2>\n<table>\n{rows}\n</table>")
    return StaticPage("500 Internal Server Error", _document("Site error", body), "error")


def maintenance_page(custom_html: bytes | None, retry_after: int, since: str = "") -> StaticPage:
    if custom_html is not None:
        body = custom_html
    else:
        note = f"<p>Since {html.escape(since)}.</p>" if since else ""
        body = _document("Down for maintenance",
                         "<h1>Down for maintenance</h1>\n<p>This site is being updated and will be back "
                         f"shortly. Please try again in a few minutes.</p>\n{note}")
    return StaticPage("503 Service Unavailable", body, "maintenance",
                      [("Retry-After", str(retry_after))])


def now_text() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
