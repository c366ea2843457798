"""Every HTML page wsgi-shim serves, with one stylesheet: maintenance, start-up error (plain for
visitors, full for the owner) and request error (shim.runtime.diagnostics serves that one).

Everything that goes into HTML passes through ``esc``, which also makes text surrogate-safe: a
path that is not valid UTF-8 (Linux allows any bytes) reaches Python as a str with lone
surrogates, which would make ``.encode("utf-8")`` raise and the page fail. Such bytes are shown
as ``\\xNN`` instead. Pages are rendered once, at start-up (the start-up error page in both of
its versions); serving one costs a start_response call and, for the start-up error page, one
opt-in test of the request.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shim.runtime import optin
from shim.runtime.problems import Problem

# Readable on a phone (390 px) and a desktop alike; long paths and tokens wrap instead of
# widening the page, tracebacks scroll inside their box.
STYLE = """*{box-sizing:border-box}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#fff;
max-width:56rem;margin:0 auto;padding:1.5rem 1rem 3rem;overflow-wrap:anywhere}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 1rem}h2{font-size:1.2rem;margin:2rem 0 .6rem}
p{margin:.6rem 0}code{font:.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
background:#f0f1f3;padding:.05em .3em;border-radius:3px}
pre{font:.8rem/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f7f9;
border:1px solid #e1e4e8;border-radius:6px;padding:.7rem;overflow-x:auto;max-width:100%;
overflow-wrap:normal}
.card{border:1px solid #e1e4e8;border-left:4px solid #c62828;border-radius:6px;padding:.8rem 1rem;
margin:0 0 1rem}.card.warning{border-left-color:#b26a00}
.card h3{font-size:1.05rem;margin:0 0 .4rem}.code{color:#57606a;font-size:.85rem}
.where{color:#57606a;font-size:.95rem}.fix{background:#eef7ee;border-radius:4px;padding:.4rem .6rem;
margin:.5rem 0}.meta{color:#57606a}.error-id{font-size:1.05em;font-weight:600}
ol.problems{list-style:none;padding:0;margin:0}
.source{padding:0;overflow-x:auto}.source span{display:block;padding:0 .7rem;white-space:pre}
.source .hit{background:#ffebe9;font-weight:600}
details{margin:.5rem 0}summary{cursor:pointer;color:#0969da}
table{border-collapse:collapse;width:100%}td{padding:.2rem .8rem .2rem 0;vertical-align:top;
border-bottom:1px solid #eee}td:first-child{color:#57606a;white-space:nowrap}
.box{background:#f6f7f9;border-radius:6px;padding:.8rem 1rem}"""

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_CODE = re.compile(r"`([^`\n]+)`")
_LOCATED = re.compile(r"^(?P<file>/.+?) line (?P<line>\d+)\b")

HTML_HEADERS = (("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"))


# -- text ---------------------------------------------------------------------------------------

def clean(value: object) -> str:
    """str(value) without lone surrogates: bytes that were not UTF-8 show as \\xNN."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "backslashreplace"
                           ).decode("utf-8", "backslashreplace")
    return text


def _only_escapes(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def esc(value: object) -> str:
    """HTML-escaped and surrogate-safe."""
    return html.escape(clean(value))


def rich(text: object) -> str:
    """Escaped text in which `backticked` spans become <code> (fix texts are written that way)."""
    return _CODE.sub(r"<code>\1</code>", esc(text))


def readable_time(epoch: float | None = None) -> str:
    """'25 November 2026, 15:04 UTC': for visitors anywhere, unambiguous, no ISO format."""
    t = time.gmtime(time.time() if epoch is None else epoch)
    return f"{t.tm_mday} {_MONTHS[t.tm_mon - 1]} {t.tm_year}, {t.tm_hour:02d}:{t.tm_min:02d} UTC"


def document(title: str, body: str) -> bytes:
    """A whole page; ``body`` is HTML already escaped."""
    page = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"robots\" content=\"noindex\">\n<title>{esc(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
    return page.encode("utf-8", "backslashreplace")  # never raises, whatever slipped through


# -- serving ------------------------------------------------------------------------------------

class StaticPage:
    """A WSGI app that answers every request with the same status, headers and body."""

    def __init__(self, status: str, body: bytes, kind: str, extra_headers: Iterable[tuple[str, str]] = ()):
        self.status = status
        self.body = body
        self.kind = kind
        self.headers = [*HTML_HEADERS, ("Content-Length", str(len(body))), ("X-Wsgi-Shim", kind),
                        *extra_headers]

    def __call__(self, environ, start_response):
        start_response(self.status, list(self.headers))
        if environ.get("REQUEST_METHOD") == "HEAD":
            return [b""]
        return [self.body]


class StartErrorPage(StaticPage):
    """The start-up error page: the plain page for visitors, the full one for opted-in requests.

    ``opted_in(environ)`` decides per request (a header, cookie or address test), so the owner
    sees details while every other visitor sees only the error id and the time.
    """

    def __init__(self, plain: bytes, full: bytes, opted_in: Callable[[dict[str, Any]], bool]):
        super().__init__("500 Internal Server Error", plain, "error")
        self.full = full
        self.opted_in = opted_in
        self.full_headers = [*HTML_HEADERS, ("Content-Length", str(len(full))), ("X-Wsgi-Shim", "error")]

    def __call__(self, environ, start_response):
        token = getattr(self.opted_in, "token", b"")
        if token and optin.LOGIN_PARAM in environ.get("QUERY_STRING", ""):
            answer = optin.login(environ, start_response, token)
            if answer is not None:
                return answer
        try:
            owner = self.opted_in(environ)
        except Exception:  # noqa: BLE001 - a malformed request gets the plain page
            owner = False
        if not owner:
            return super().__call__(environ, start_response)
        start_response(self.status, list(self.full_headers))
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [self.full]


# -- the start-up error page ----------------------------------------------------------------------

def error_page(problems: list[Problem], facts: dict[str, str], error_id: str = "",
               opted_in: Callable[[dict[str, Any]], bool] | None = None,
               redact: Callable[[str], str] = str, when: float | None = None) -> StartErrorPage:
    """The start-up error page; ``opted_in`` None means nobody sees the details."""
    when = time.time() if when is None else when
    plain = document("Site error", _plain_start_body(error_id, when))
    full = document("Site error", full_start_body(problems, facts, error_id, redact, when))
    return StartErrorPage(plain, full, opted_in or (lambda environ: False))


def _id_line(error_id: str, when: float) -> str:
    shown = f"<p>Error id: <code class=\"error-id\">{esc(error_id)}</code></p>\n" if error_id else ""
    return f"{shown}<p class=\"meta\">{esc(readable_time(when))}</p>\n"


def _plain_start_body(error_id: str, when: float) -> str:
    return ("<h1>This site could not start</h1>\n"
            "<p>The site is not available right now because of a problem on the server. "
            "The problem has been recorded; please try again later.</p>\n"
            + _id_line(error_id, when)
            + "<p>If you report this problem, please quote the error id.</p>\n"
            "<p class=\"meta\">Site owner: <code>wsgi-shim status SITE</code> shows what went "
            "wrong, or opt in to see it here (see the wsgi-shim docs, pages).</p>")


def full_start_body(problems: list[Problem], facts: dict[str, str], error_id: str = "",
                    redact: Callable[[str], str] = str, when: float | None = None) -> str:
    """The owner's page: every problem in file order, with source lines and the traceback."""
    from shim.runtime import advice  # only on an error page

    ordered = in_file_order(problems)
    count = sum(p.blocking for p in ordered)
    items = "\n".join(problem_html(p, redact) for p in ordered)
    rows = "\n".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts.items())
    return (f"<h1>This site could not start</h1>\n"
            f"<p>wsgi-shim found {count} problem{'s' if count != 1 else ''} while starting the site. "
            f"Fix {'them' if count != 1 else 'it'}, then run "
            f"<code>{esc(advice.command('restart', facts.get('app root') or 'SITE'))}</code> "
            f"(or <code>inv restart</code>).</p>\n"
            + _id_line(error_id, time.time() if when is None else when)
            + f"<ol class=\"problems\">\n{items}\n</ol>\n"
            f"<h2>Process</h2>\n<table>\n{rows}\n</table>\n"
            "<p class=\"meta\">You see this page because this request is opted in ([logging] "
            "debug_token_file or debug_addresses) or the site shows details to everyone.</p>")


def problem_html(problem: Problem, redact: Callable[[str], str] = str) -> str:
    label = "" if problem.blocking else f"{esc(problem.severity.capitalize())}: "
    detail = ""
    if problem.detail:
        detail = (f"\n<details open><summary>Traceback</summary><pre>{esc(problem.detail)}</pre>"
                  "</details>")
    return (f"<li class=\"card{'' if problem.blocking else ' warning'}\">"
            f"<h3>{label}{rich(problem.what)}</h3>\n<div class=\"code\">[{esc(problem.code)}]</div>\n"
            f"<div class=\"where\">Where: {rich(problem.where)}</div>\n"
            f"{source_html(problem.where, redact)}"
            f"<div class=\"fix\">How to fix: {rich(problem.fix)}</div>{detail}</li>")


def located(where: str) -> tuple[str, int] | None:
    """(file, line) when ``where`` starts with "/path/file line N"."""
    m = _LOCATED.match(where)
    return (m.group("file"), int(m.group("line"))) if m else None


def in_file_order(problems: Sequence[Problem]) -> list[Problem]:
    """Problems of one file by line number, files in the order they first appear; problems
    without a line keep their place after the located ones of their file."""
    files: dict[str, int] = {}
    keys = []
    for index, p in enumerate(problems):
        spot = located(p.where)
        name = spot[0] if spot else p.where.split(",")[0]
        rank = files.setdefault(name, len(files))
        keys.append((rank, spot[1] if spot else float("inf"), index))
    return [problems[k[2]] for k in sorted(keys)]


SOURCE_CONTEXT = 5
_MAX_SOURCE = 1 << 20


def source_lines(path: str, line: int, context: int = SOURCE_CONTEXT) -> list[tuple[int, str]]:
    """The lines around ``line`` of a Python file, or [] (not .py, not a regular file, unreadable).

    Only .py files: config.toml lines may hold passwords the redactor does not know about.
    Opened non-blocking and read with a limit, so a FIFO or a huge file cannot hang the start.
    """
    if not path.endswith(".py"):
        return []
    from shim.runtime.files import read_regular

    try:
        data = read_regular(path, _MAX_SOURCE, truncate=True)
    except (OSError, ValueError):
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    first = max(1, line - context)
    return [(n, lines[n - 1]) for n in range(first, min(len(lines), line + context) + 1)]


def source_html(where: str, redact: Callable[[str], str] = str) -> str:
    spot = located(where)
    if spot is None:
        return ""
    lines = source_lines(*spot)
    if not lines:
        return ""
    width = len(str(lines[-1][0]))
    hit = ' class="hit"'
    rows = "".join(f"<span{hit if n == spot[1] else ''}>{n:>{width}}  {esc(redact(text))}</span>"
                   for n, text in lines)
    return f"<pre class=\"source\">{rows}</pre>\n"


# -- the request error page (served by shim.runtime.diagnostics) -----------------------------------

def request_error_page(error_id: str, detail: tuple[str, str] | None = None,
                       when: float | None = None) -> bytes:
    """The 500 page of a failed request; ``detail`` = (request line, headers + traceback),
    already redacted, only for opted-in requests."""
    extra = ""
    if detail is not None:
        extra = ("<h2>Traceback</h2>\n<p class=\"meta\">Shown because this request is opted in to "
                 "debugging ([logging] debug_token_file or debug_addresses). Find this entry later "
                 f"with <code>wsgi-shim logs SITE --id {esc(error_id)}</code>.</p>\n"
                 f"<pre>{esc(detail[0])}\n{esc(detail[1])}</pre>\n")
    body = ("<h1>Something went wrong</h1>\n"
            "<p>The site hit an error while handling this request. The error has been recorded.</p>\n"
            + _id_line(error_id, time.time() if when is None else when)
            + "<p>If you report this problem, please quote the error id.</p>\n" + extra)
    return document("500 Internal Server Error", body)


# -- maintenance --------------------------------------------------------------------------------

def maintenance_page(custom_html: bytes | None, retry_after: int, since: float | None = None) -> StaticPage:
    """The 503 page while tmp/maint.txt exists: the site's own page, or ours."""
    if custom_html is not None:
        body = custom_html
    else:
        note = f"<p class=\"meta\">Since {esc(readable_time(since))}.</p>" if since else ""
        body = document("Down for maintenance",
                        "<h1>Down for maintenance</h1>\n<p>This site is being updated and will be back "
                        f"shortly. Please try again in a few minutes.</p>\n{note}")
    return StaticPage("503 Service Unavailable", body, "maintenance",
                      [("Retry-After", str(retry_after))])


# -- the last resort ------------------------------------------------------------------------------

def fallback_page() -> StaticPage:
    """When even building the error page failed: nothing but the fact."""
    return StaticPage("500 Internal Server Error", document(
        "Site error", "<h1>This site could not start</h1>\n<p>The site is not available right now "
        "because of a problem on the server. Please try again later.</p>"), "error")
