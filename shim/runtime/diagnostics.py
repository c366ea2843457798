"""Request-time exception middleware: an error id page for visitors, the traceback in the app log.

    from shim.runtime.diagnostics import wrap
    application = wrap(app, config.logging, applog, redactor)

shim.loader does this when ``[logging] catch_errors = true`` (the default); with it off,
``wrap`` returns the app itself and nothing is added to the request path.

An exception raised by the app while it is called, while its response is iterated or while
the response is closed is written to the app log with the request line, the (masked) request
headers, the full traceback and a fresh error id. The visitor gets a plain 500 page naming only
that error id, with the header ``X-Wsgi-Shim: app-error``. Requests the developer opted in (the
contents of ``debug_token_file`` sent as header X-Shim-Debug-Token or cookie shim_debug_token,
or a REMOTE_ADDR inside ``debug_addresses``) see the traceback on the page too. Secrets are
masked in both (shim.redact).

On the healthy path the cost is one try/except; a list or tuple response is returned as is,
any other iterable is passed through a thin generator.
"""

from __future__ import annotations

import contextlib
import html
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from shim.runtime.applog import format_entry
from shim.runtime.redact import Redactor, header_secrets, looks_secret, mask_query, secret_env_values

if TYPE_CHECKING:
    from shim.runtime.applog import AppLog
    from shim.runtime.config import LoggingConfig

TOKEN_HEADER = "HTTP_X_SHIM_DEBUG_TOKEN"
TOKEN_COOKIE = "shim_debug_token"
MIN_TOKEN_LENGTH = 16
SHIM_HEADER = ("X-Wsgi-Shim", "app-error")
# Headers never shown, even masked by pattern: their whole value is a credential.
_CREDENTIAL_HEADERS = frozenset({"HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_COOKIE",
                                 TOKEN_HEADER})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ResponseAborted(Exception):
    """Raised to the server when the app failed after part of its response was sent.

    Carries only the error id, so the server's own log (Passenger's) learns nothing secret.
    """


class CatchErrors:
    """WSGI middleware: unhandled exceptions become a logged error id and a plain 500 page.

        application = CatchErrors(app, ErrorReporter(applog, redactor))
    """

    def __init__(self, app: WSGIApp, reporter: ErrorReporter) -> None:
        self.app = app
        self.reporter = reporter

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            body = self.app(environ, start_response)
        except Exception:  # noqa: BLE001 - that is the point of this middleware
            return self.reporter.respond(environ, start_response)
        if type(body) is list or type(body) is tuple:
            return body  # nothing left that can raise
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and type(wrapper) is type and isinstance(body, wrapper):
            return body  # keep the server's sendfile path
        return _GuardedBody(body, environ, start_response, self.reporter)


class _GuardedBody:
    """The app's response iterable, with exceptions during iteration or close() reported."""

    __slots__ = ("_body", "_environ", "_reporter", "_start_response")

    def __init__(self, body: Iterable[bytes], environ: dict[str, Any],
                 start_response: Callable[..., Any], reporter: ErrorReporter) -> None:
        self._body = body
        self._environ = environ
        self._start_response = start_response
        self._reporter = reporter

    def __iter__(self) -> Iterator[bytes]:
        sent = False
        try:
            for chunk in self._body:
                if chunk:
                    sent = True
                yield chunk
        except Exception:  # noqa: BLE001 - the app's failure, reported
            if sent:  # headers and part of the body are out: all we can do is log and abort
                error_id = self._reporter.log(self._environ, "while sending the response")
                raise ResponseAborted(f"app failed mid-response; error id {error_id}") from None
            yield from self._reporter.respond(self._environ, self._start_response)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - the app's failure, reported
                self._reporter.log(self._environ, "while closing the response")


class ErrorReporter:
    """Everything the error path needs: logging with an error id, opt-in check, the page."""

    def __init__(self, applog: AppLog | None, redact: Redactor, token: bytes = b"",
                 networks: Sequence[Any] = ()) -> None:
        self.applog = applog
        self.redact = redact
        self.token = token
        self.networks = tuple(networks)

    # -- logging ---------------------------------------------------------------------------

    def log(self, environ: dict[str, Any], when: str = "") -> str:
        """Write the current exception to the app log; return its error id. Never raises."""
        error_id = new_error_id()
        with contextlib.suppress(Exception):  # a failing report must not mask the app's error
            self._write(error_id, self._report_text(environ, error_id, when))
        return error_id

    def _report_text(self, environ: dict[str, Any], error_id: str, when: str) -> tuple[str, str]:
        import traceback

        redact = self.redact.extended(header_secrets(environ))
        head = f"error id {error_id}: {request_line(environ)}" + (f" ({when})" if when else "")
        etype, value, tb = sys.exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # the middleware's own frames tell the developer nothing
        trace = "".join(traceback.format_exception(etype, value, tb))
        body = "\n".join(request_headers(environ) + [trace])
        return redact(head), redact(body)

    def _write(self, error_id: str, text: tuple[str, str]) -> None:
        entry = format_entry("ERROR", "shim.request", text[0] + "\n" + text[1])
        if self.applog is not None:
            self.applog.write(entry)
        else:  # no app log: at least the server's log gets it
            stream = sys.__stderr__
            if stream is not None:
                stream.write(entry)
                stream.flush()

    # -- the visitor's page ----------------------------------------------------------------

    def respond(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Log the current exception and answer 500 with its error id (and, opted in, the
        traceback). Called inside an ``except`` block."""
        exc_info = sys.exc_info()
        error_id = new_error_id()
        text: tuple[str, str] | None = None
        detail = None
        with contextlib.suppress(Exception):  # the visitor gets the plain page whatever happens
            text = self._report_text(environ, error_id, "")
            self._write(error_id, text)
        with contextlib.suppress(Exception):
            detail = text if text is not None and self.opted_in(environ) else None
        body = error_page(error_id, detail).encode("utf-8")
        headers = [("Content-Type", "text/html; charset=utf-8"),
                   ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store"),
                   SHIM_HEADER]
        try:
            start_response("500 Internal Server Error", headers, exc_info)
        except Exception:  # noqa: BLE001 - servers re-raise the app's exception here
            # The server had already sent the app's headers: it cannot take a new status.
            raise ResponseAborted(f"app failed mid-response; error id {error_id}") from None
        finally:
            del exc_info
        return [body]

    def opted_in(self, environ: dict[str, Any]) -> bool:
        """Does this request see tracebacks? Token (constant-time compare) or client address."""
        if self.token:
            import hmac

            sent = environ.get(TOKEN_HEADER) or cookie_value(environ.get("HTTP_COOKIE", ""),
                                                             TOKEN_COOKIE)
            if sent and hmac.compare_digest(sent.strip().encode("utf-8", "replace"), self.token):
                return True
        if self.networks:
            import ipaddress

            try:
                addr = ipaddress.ip_address(environ.get("REMOTE_ADDR", "").split("%")[0])
            except ValueError:
                return False
            return any(addr in net for net in self.networks if addr.version == net.version)
        return False


def new_error_id() -> str:
    """10 hex digits: short enough to read out, unique enough for one site's log."""
    return os.urandom(5).hex()


def request_line(environ: dict[str, Any]) -> str:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = mask_query(environ.get("QUERY_STRING", ""))
    parts = [environ.get("REQUEST_METHOD", "?"), (path or "/") + ("?" + query if query else ""),
             environ.get("SERVER_PROTOCOL", ""), "from", environ.get("REMOTE_ADDR", "?")]
    return " ".join(p for p in parts if p)


def request_headers(environ: dict[str, Any]) -> list[str]:
    """Request headers for the log, credential and secret-named ones masked."""
    lines = []
    for key in sorted(environ):
        if not key.startswith("HTTP_") and key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            continue
        name = "-".join(part.capitalize() for part in key.removeprefix("HTTP_").split("_"))
        value = environ[key]
        if key in _CREDENTIAL_HEADERS or looks_secret(key):
            value = "[redacted]"
        lines.append(f"{name}: {value}")
    return lines


def cookie_value(cookie_header: str, name: str) -> str:
    for part in cookie_header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v.strip().strip('"')
    return ""


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex">
<title>500 Internal Server Error</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:3em auto;padding:0 1em;color:#222}}
code{{background:#f3f3f3;padding:.1em .3em}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style>
</head>
<body>
<h1>Something went wrong</h1>
<p>The site hit an error while handling this request. The error has been recorded.</p>
<p>Error id: <code class="error-id">{error_id}</code></p>
<p>If you report this problem, please quote the error id.</p>
{detail}</body>
</html>
"""

_DETAIL = """<h2>Traceback</h2>
<p>Shown because this request is opted in to debugging ([logging] debug_token_file or
debug_addresses). Find this entry later with <code>wsgi-shim logs SITE --id {error_id}</code>.</p>
<pre>{head}
{body}</pre>
"""


def error_page(error_id: str, detail: tuple[str, str] | None = None) -> str:
    """The plain 500 page; ``detail`` = (request line, headers + traceback), already redacted."""
    esc = html.escape
    extra = ""
    if detail is not None:
        extra = _DETAIL.format(error_id=esc(error_id), head=esc(detail[0]), body=esc(detail[1]))
    return _PAGE.format(error_id=esc(error_id), detail=extra)


def _read_token(path: str) -> tuple[bytes, str]:
    """The debug token and "" , or b"" and why the token cannot be used."""
    import stat

    from shim.runtime.files import open_regular, why_not

    try:  # a FIFO or device here must not hang the start
        fd = open_regular(path)
        try:
            st = os.fstat(fd)
            data = os.read(fd, 4096).strip()
        finally:
            os.close(fd)
    except OSError as exc:
        return b"", why_not(exc)
    if st.st_mode & stat.S_IROTH:
        return b"", "is readable by everyone (chmod 600 it)"
    try:
        from shim.runtime.permissions import group_is_safe

        if st.st_mode & stat.S_IRGRP and not group_is_safe(st.st_gid, None):
            return b"", "is readable by a group shared with other users (chmod 600 it)"
    except ImportError:  # pragma: no cover
        pass
    if len(data) < MIN_TOKEN_LENGTH:
        return b"", (f"holds fewer than {MIN_TOKEN_LENGTH} characters (make one with "
                     "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return data, ""


def wrap(app: WSGIApp, cfg: LoggingConfig, applog: AppLog | None,
         redact: Redactor | Sequence[str]) -> WSGIApp:
    """The app with the exception middleware around it, or the app itself when
    ``[logging] enabled`` or ``catch_errors`` is off. Never raises.

    ``redact`` is the process's Redactor (the one the app log uses; the debug token is added to
    it); a list of secret values is accepted too."""
    if not getattr(cfg, "enabled", True) or not getattr(cfg, "catch_errors", True):
        return app
    warnings: list[str] = []
    token = b""
    token_file = getattr(cfg, "debug_token_file", "") or ""
    if token_file:
        token, why = _read_token(token_file)
        if why:
            warnings.append(f"[logging] debug_token_file {token_file} {why}; "
                            "no request sees tracebacks by token.")
    networks, bad = cfg.debug_networks()  # parsed once, by shim.runtime.config
    for a in bad:
        warnings.append(f"[logging] debug_addresses entry {a!r} is not an IP address or "
                        "network; it is ignored.")
    if not isinstance(redact, Redactor):
        redact = Redactor(list(redact) + secret_env_values(), getattr(cfg, "redact", []) or [])
        if applog is not None:
            applog.redact = redact
    if token:
        redact.add([token.decode("utf-8", "replace")])  # the log and pages mask the token too
    if applog is not None:
        for w in warnings:
            applog.entry("WARNING", "shim", w)
    return CatchErrors(app, ErrorReporter(applog, redact, token, networks))
