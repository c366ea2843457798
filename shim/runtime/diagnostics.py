"""Request-time exception middleware: an error id page for visitors, the traceback in the app log.

    from shim.runtime.diagnostics import wrap
    application = wrap(app, config.logging, applog, redactor)

shim.loader does this when ``[logging] catch_errors = true`` (the default); with it off,
``wrap`` returns the app itself and nothing is added to the request path.

An exception (SystemExit and KeyboardInterrupt included) raised by the app while it is called,
while its response is iterated or while the response is closed is written to the app log with
the request line, the (masked) request headers, the full traceback and a fresh error id. The
visitor gets a plain 500 page naming only that error id, with the header
``X-Wsgi-Shim: app-error``. Requests the developer opted in (the contents of
``debug_token_file`` sent as header X-Shim-Debug-Token or cookie shim_debug_token, or a
REMOTE_ADDR inside ``debug_addresses``) see the traceback on the page too. Secrets are masked in
both; what the entry always shows, what it masks and its size limits are in
shim.runtime.error_entry. The same error repeated more than a few times a minute is counted,
not logged in full each time (shim.runtime.throttle). A 5xx the app answers itself (its own error
page) is logged as a request error too; the page is left as it is.

On the healthy path the cost is one try/except; a list or tuple response is returned as is,
any other iterable is passed through a thin generator.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

from shim.runtime import optin
from shim.runtime.applog import format_entry
from shim.runtime.error_entry import request_headers, request_line
from shim.runtime.redact import Redactor, secret_env_values
from shim.runtime.throttle import ErrorThrottle, kind_of_error

TYPE_CHECKING = False  # importing typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from shim.runtime.applog import AppLog
    from shim.runtime.config import LoggingConfig

    WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

TOKEN_HEADER = optin.TOKEN_HEADER
TOKEN_COOKIE = optin.TOKEN_COOKIE
MIN_TOKEN_LENGTH = optin.MIN_TOKEN_LENGTH
SHIM_HEADER = ("X-Wsgi-Shim", "app-error")
__all__ = ["CatchErrors", "ErrorReporter", "request_headers", "request_line", "wrap"]
# What a view may raise that is no Exception yet must not end the process: sys.exit() in a view
# made Passenger's loader exit mid-request (a 502 "Incomplete response", nothing in the app log).
# KeyboardInterrupt is reported the same way, then raised again from close() once the page is
# out, so a real Ctrl-C or Passenger's shutdown still stops the process (_Interrupted).
CAUGHT = (Exception, SystemExit, KeyboardInterrupt)



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
        self.token = getattr(reporter.opted_in, "token", b"")  # the owner's login URL sets its cookie

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.token and optin.LOGIN_PARAM in environ.get("QUERY_STRING", ""):
            answer = optin.login(environ, start_response, self.token)
            if answer is not None:
                return answer
        reporter = self.reporter

        def observed(status: str, headers: list, exc_info: Any = None, _start: Any = start_response) -> Any:
            if status[:1] == "5":  # the app's own error page: logged, the page itself unchanged
                reporter.log_answer(environ, status)
            return _start(status, headers, exc_info)  # PEP 3333: exc_info=None is the default

        try:
            body = self.app(environ, observed)
        except CAUGHT:  # noqa: BLE001 - that is the point of this middleware
            return self.reporter.respond(environ, start_response)
        if type(body) is list or type(body) is tuple:
            return body  # nothing left that can raise
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and type(wrapper) is type and isinstance(body, wrapper):
            return body  # keep the server's sendfile path
        return _GuardedBody(body, environ, start_response, self.reporter)


class _GuardedBody:
    """The app's response iterable, with exceptions during iteration or close() reported."""

    __slots__ = ("_body", "_environ", "_interrupted", "_reporter", "_start_response")

    def __init__(self, body: Iterable[bytes], environ: dict[str, Any],
                 start_response: Callable[..., Any], reporter: ErrorReporter) -> None:
        self._body = body
        self._environ = environ
        self._start_response = start_response
        self._reporter = reporter
        self._interrupted = False

    def __iter__(self) -> Iterator[bytes]:
        sent = False
        try:
            for chunk in self._body:
                if chunk:
                    sent = True
                yield chunk
        except CAUGHT as exc:  # noqa: BLE001 - the app's failure, reported
            self._interrupted = isinstance(exc, KeyboardInterrupt)
            if sent:  # headers and part of the body are out: all we can do is log and abort
                error_id = self._reporter.log(self._environ, "while sending the response")
                if self._interrupted:
                    raise KeyboardInterrupt from None
                raise ResponseAborted(f"app failed mid-response; error id {error_id}") from None
            yield from self._reporter.respond(self._environ, self._start_response)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            try:
                close()
            except CAUGHT as exc:  # noqa: BLE001 - the app's failure, reported
                self._reporter.log(self._environ, "while closing the response")
                self._interrupted = self._interrupted or isinstance(exc, KeyboardInterrupt)
        if self._interrupted:  # the page is out: now stop, as the interrupt asked
            raise KeyboardInterrupt


class _Interrupted(list):
    """The error page for a KeyboardInterrupt: sent, then the interrupt goes on from close()
    (the server calls it after the body), so the process still stops as it was asked to."""

    def close(self) -> None:
        raise KeyboardInterrupt


class ErrorReporter:
    """Everything the error path needs: logging with an error id, opt-in check, the page."""

    def __init__(self, applog: AppLog | None, redact: Redactor,
                 opt_in: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.applog = applog
        self.redact = redact
        self.opted_in = opt_in or optin.OptIn()
        self.throttle = ErrorThrottle()
        self._flush_at_exit = False

    # -- logging ---------------------------------------------------------------------------

    def log(self, environ: dict[str, Any], when: str = "") -> str:
        """Write the current exception to the app log; return its error id. Never raises."""
        return self._record(environ, new_error_id(), when)[0]

    def _record(self, environ: dict[str, Any], error_id: str, when: str) -> tuple[str, tuple[str, str] | None]:
        """Log the current exception in full, or count it when the same error repeats too often
        (shim.runtime.throttle); (the error id to show, the entry's text if it was made)."""
        text = None
        with contextlib.suppress(Exception):  # a failing report must not mask the app's error
            full, error_id, summary = self.throttle.admit(kind_of_error(sys.exc_info()), error_id)
            if summary:
                self._write_line(summary)
            if not full:
                self._flush_later()
                return error_id, None
            text = self._report_text(environ, error_id, when)
            self._write(error_id, text)
        return error_id, text

    def log_answer(self, environ: dict[str, Any], status: str) -> str:
        """The app answered 5xx itself (its own error page, no exception reached us): one entry
        with an error id, so `logs --errors`, `status` and a deploy's watch see it. Never raises."""
        from shim.runtime import error_entry  # only when the app answered 5xx

        error_id = new_error_id()
        with contextlib.suppress(Exception):
            head, body = error_entry.build(environ, error_id, f"the app answered {status[:60]} itself",
                                           self.redact, (None, None, None))
            self._write(error_id, (head, body + "No exception reached wsgi-shim: the app rendered its own error "
                                               "page. Its own logging, near this entry, may hold the traceback.\n"))
        return error_id

    def _report_text(self, environ: dict[str, Any], error_id: str, when: str) -> tuple[str, str]:
        from shim.runtime import error_entry  # only when a request failed

        etype, value, tb = sys.exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # the middleware's own frames tell the developer nothing
        return error_entry.build(environ, error_id, when, self.redact, (etype, value, tb))

    def _write_line(self, message: str) -> None:
        if self.applog is not None:
            self.applog.entry("ERROR", "shim.request", message)

    def _flush_later(self) -> None:
        """Write the counts not yet written when the process exits."""
        if not self._flush_at_exit:
            import atexit

            self._flush_at_exit = True
            atexit.register(lambda: [self._write_line(s) for s in self.throttle.pending()])

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
        interrupted = isinstance(exc_info[1], KeyboardInterrupt)
        error_id, text = self._record(environ, new_error_id(), "")
        detail = None
        with contextlib.suppress(Exception):  # the visitor gets the plain page whatever happens
            if self.opted_in(environ):
                detail = text or self._report_text(environ, error_id, "")
        body = _page_bytes(error_id, detail)
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
        return _Interrupted([body]) if interrupted else [body]


def new_error_id() -> str:
    """10 hex digits: short enough to read out, unique enough for one site's log."""
    return os.urandom(5).hex()


def _page_bytes(error_id: str, detail: tuple[str, str] | None) -> bytes:
    from shim.runtime import pages  # only when a request failed

    return pages.request_error_page(error_id, detail)


def error_page(error_id: str, detail: tuple[str, str] | None = None) -> str:
    """The request error page (shim.runtime.pages renders it); ``detail`` = (request line,
    headers + traceback), already redacted."""
    from shim.runtime import pages  # only when a request failed

    return pages.request_error_page(error_id, detail).decode("utf-8")


def wrap(app: WSGIApp, cfg: LoggingConfig, applog: AppLog | None,
         redact: Redactor | Sequence[str]) -> WSGIApp:
    """The app with the exception middleware around it, or the app itself when
    ``[logging] enabled`` or ``catch_errors`` is off. Never raises.

    ``redact`` is the process's Redactor (the one the app log uses; the debug token is added to
    it); a list of secret values is accepted too."""
    if not getattr(cfg, "enabled", True) or not getattr(cfg, "catch_errors", True):
        return app
    opt_in, warnings = optin.from_config(cfg)
    if not isinstance(redact, Redactor):  # a caller with a list of secret values
        redact = Redactor(list(redact) + secret_env_values(), getattr(cfg, "redact", []) or [])
        if applog is not None:
            applog.redact = redact
    if opt_in.token:  # the log and the pages mask the token too
        redact.add([opt_in.token.decode("utf-8", "replace")])
    if applog is not None:
        for w in warnings:
            applog.entry("WARNING", "shim", w)
    return CatchErrors(app, ErrorReporter(applog, redact, opt_in))
