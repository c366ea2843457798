"""What the app answered to the requests `check` sends it after the import ([check] requests),
as problems.

Many apps import cleanly and fail at their first request: a configuration file read lazily, a
path resolved per request, their own 500 page. shim/ops/probe.py makes those requests in the
probe process (the site's Python, environment and cwd, as Passenger would); this turns its report
into the catalogue's problems: a 5xx answer, an exception or no answer fails the check; 2xx, 3xx
and 4xx pass, except a 400 to the site's own host name (a host check such as Django's
ALLOWED_HOSTS refusing every visitor).
"""

from __future__ import annotations

import html
import re

from shim.runtime.layout import Site
from shim.runtime.problems import Problem

PAGE_LINES = 8
SKIP_FIX = ("If this path needs a login, a POST or has side effects, name another in [check] requests "
            "(e.g. \"/healthz\"); `--no-request` skips the requests for one check.")


def page_text(body: str, lines: int = PAGE_LINES) -> list[str]:
    """The first LINES lines of a page's visible text (tags, scripts and styles dropped)."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", body)
    text = re.sub(r"(?s)<!--.*?-->", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|h\d|li|tr|title|pre)>", "\n", text)
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    out = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            out.append(line[:160])
        if len(out) >= lines:
            break
    return out


def _status_code(report: dict) -> int | None:
    try:
        return int(str(report.get("status", "")).split()[0])
    except (ValueError, IndexError):
        return None


def _detail(report: dict, brief: bool = False) -> str:
    """The traceback, where it waits, the page's first lines and what the app logged; BRIEF (a
    warning): the page and the first line the app logged."""
    if brief:
        said = report.get("output", "").strip().splitlines()[:1]
        text = page_text(report.get("body", ""), 3)
        return "\n".join(["The page began:", *("  " + t for t in text)] if text else []) + \
            ("\nThe app logged: " + said[0][:300] if said else "")
    parts = []
    if report.get("traceback"):
        parts.append(report["traceback"].rstrip())
    if report.get("stuck"):
        parts.append("Where the request is now (most recent call last):\n" + report["stuck"].rstrip())
    text = page_text(report.get("body", ""))
    if text:
        parts.append("The page began:\n" + "\n".join("  " + t for t in text))
    if report.get("output", "").strip():
        parts.append("What the app printed or logged meanwhile:\n" + report["output"].rstrip()[-4000:])
    return "\n\n".join(parts)


def _stuck_frame(stack: str) -> str:
    frames = re.findall(r'File "([^"]+)", line (\d+)', stack)
    own = [f for f in frames if "/site-packages/" not in f[0] and "/lib/python" not in f[0]]
    pick = (own or frames)[-1:] if frames else []
    return f"{pick[0][0]} line {pick[0][1]}" if pick else ""


def request_problem(site: Site, report: dict, spec: dict) -> Problem | None:
    """The problem one request's report shows, or None when its answer is healthy."""
    request = report.get("request", "GET /")
    host = report.get("host", "localhost")
    asked = f"{request} (Host: {host})"
    where = report.get("where") or f"{site.config_toml}, [check] requests"
    if "timeout" in report:
        return Problem("request-timeout", f"The app imports, but {asked} got no answer within "
                                          f"{report['timeout']:g} s; Passenger would keep visitors waiting too.",
                       _stuck_frame(report.get("stuck", "")) or where,
                       "Look where the request waits (below): a network call without a timeout, a lock, a "
                       f"slow query. Raise [check] timeout if the page is just slow. {SKIP_FIX}", _detail(report))
    status = _status_code(report)
    if "exception" in report:
        answered = f"answered {report['status']} and then " if status is not None else ""
        return Problem("request-failed", f"The app imports, but {asked} {answered}raised {report['exception']}: "
                                         "every visitor of this page would get an error.", where,
                       "Fix the error at the place shown (the traceback below is the app's; the request ran "
                       f"with the site's environment and working directory, as under Passenger). {SKIP_FIX}",
                       _detail(report))
    if status is None:
        return Problem("request-failed", f"The app imports, but {asked} returned without calling "
                                         "start_response (no status): not a valid WSGI answer.", where,
                       "Make the app call start_response before returning its body.", _detail(report))
    if status >= 500:
        return Problem("request-failed", f"The app imports, but {asked} answered {report['status']} (the app's "
                                         "own error page: it raised nothing wsgi-shim could see).", where,
                       "Read what the app logged (below) and fix it; apps that catch their own errors (Flask, "
                       f"Django with DEBUG off) log the traceback. {SKIP_FIX}", _detail(report))
    if status == 400:
        if spec.get("host_set"):
            return Problem("request-host-refused", f"The app answers {asked} with 400 Bad Request: it refuses its "
                                                   f"own host name {host}, so every visitor gets 400.",
                           f"{site.config_toml}, [check] host",
                           f"Add {host} to the app's allowed hosts (Django: ALLOWED_HOSTS; Flask: TRUSTED_HOSTS "
                           "or SERVER_NAME) and deploy again.", _detail(report))
        return Problem("request-host-refused", f"The app answers {asked} with 400 Bad Request: probably a host "
                                               "check (Django's ALLOWED_HOSTS) refusing 'localhost', the name "
                                               "check uses while [check] host is not set.",
                       f"{site.config_toml}, [check]",
                       'Set the name visitors use: [check] host = "www.example.org", and check again.',
                       _detail(report, brief=True), severity="warning")
    return None


def request_problems(site: Site, result: dict, spec: dict | None) -> list[Problem]:
    problems = []
    for report in result.get("requests", []):
        problem = request_problem(site, report, spec or {})
        if problem is not None:
            problems.append(problem)
    return problems


def summary(result: dict) -> list[str]:
    """One line per request made, for `check`'s report: what each answered."""
    lines = []
    for report in result.get("requests", []):
        answer = report.get("status") or ("no answer" if "timeout" in report else "no status")
        if "exception" in report:
            answer += f", raised {report['exception'].split(':')[0]}"
        lines.append(f"{report.get('request')} (Host: {report.get('host')}) -> {answer} "
                     f"in {report.get('seconds', 0):.2f} s")
    return lines
