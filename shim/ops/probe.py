"""Load a site's passenger_wsgi.py exactly as Passenger 6 does and report what it got.

Run by `wsgi-shim check` with the site's own Python (passenger_python), by file path, so it
works even when that venv lacks wsgi-shim:

    python probe.py APP_ROOT REPORT_FD

writes one JSON object to the inherited file descriptor REPORT_FD, a channel of its own: whatever
the app prints at import (to stdout, stderr or through logging) cannot garble the report. With
WSGI_SHIM_PROBE=1 the shim imports the app but records nothing and ignores maintenance mode.
Standard library only; imports nothing from shim at module level.
"""

import json
import os
import sys
import traceback

# Problems after which importing the app tells nothing new (it would fail for the same reason).
NO_IMPORT_AFTER = {"chdir-missing", "chdir-not-dir", "chdir-unreadable", "config-app-format",
                   "config-missing-key"}


def _loader():
    here = os.path.dirname(os.path.abspath(__file__))
    spec_path = os.path.join(here, "passenger_loader.py")
    import importlib.util

    spec = importlib.util.spec_from_file_location("_wsgi_shim_passenger_loader", spec_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_despite_config(app_root: str, result: dict) -> None:
    """get_app() stops at a blocking config problem; `check` goes on and imports the app with
    the values config.toml did give, so that a misspelt key and a missing module show together."""
    codes = {p.get("code") for p in result.get("problems", [])}
    if result.get("state") != "error" or any(c.startswith("app-") for c in codes) or codes & NO_IMPORT_AFTER:
        return
    try:  # a venv with an older wsgi-shim has neither: its own start reported what it could
        from pathlib import Path

        from shim.runtime.config import load_config
        from shim.runtime.loader import import_app
    except ImportError:
        return
    cfg, _ = load_config(Path(app_root))
    if cfg is None or not cfg.module:
        return
    _, problems = import_app(cfg, cfg.secret_values())
    result["problems"] += [p.as_dict() for p in problems]


REQUESTS_ENV = "WSGI_SHIM_PROBE_REQUESTS"  # JSON: {"requests": [[METHOD, PATH]...], "host", "timeout"}
BODY_KEEP = 64 * 1024   # what is kept of a page's text for the report
OUTPUT_KEEP = 8 * 1024  # what is kept of what the app printed or logged during a request


def _environ(method: str, target: str, host: str, errors) -> dict:
    import io
    from urllib.parse import unquote

    path, _, query = target.partition("?")
    return {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query, "SERVER_NAME": host.split(":")[0], "SERVER_PORT": "443",
            "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": host, "REMOTE_ADDR": "127.0.0.1",
            "HTTP_USER_AGENT": "wsgi-shim-check", "HTTP_ACCEPT": "text/html,*/*;q=0.8",
            "HTTP_X_WSGI_SHIM_CHECK": "1",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": errors, "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False}


def _call(app, environ: dict, out: dict) -> None:
    """One request, as a WSGI server makes it; fills OUT (status, headers, body, exception)."""
    def start_response(status, headers, exc_info=None):
        out["status"], out["headers"] = status, [list(h) for h in headers]
        return lambda data: body.append(bytes(data))

    body: list[bytes] = []
    try:
        result = app(environ, start_response)
        try:
            size = 0
            for chunk in result:
                if size < BODY_KEEP:
                    body.append(bytes(chunk))
                size += len(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except BaseException as exc:  # noqa: BLE001 - SystemExit in a view is the app's failure too
        out["exception"] = f"{exc.__class__.__name__}: {exc}"
        out["traceback"] = "".join(traceback.format_exception(exc))
        out["where"] = _app_frame(exc)
    out["body"] = b"".join(body)[:BODY_KEEP].decode("utf-8", "replace")


def _app_frame(exc: BaseException) -> str:
    """file:line of the innermost frame in the site's own code (below the cwd, which is the app's
    chdir, outside any venv), else the innermost frame outside the standard library."""
    cwd = os.getcwd() + os.sep
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename.startswith(cwd) and "site-packages" not in f.filename]
    pick = own or [f for f in frames if not f.filename.startswith(os.path.dirname(os.__file__))]
    return f"{pick[-1].filename} line {pick[-1].lineno}" if pick else ""


def request_report(app, method: str, target: str, host: str, timeout: float) -> dict:
    """Send APP one request in a thread of its own, catching what it prints and logs meanwhile;
    after TIMEOUT seconds report where it is stuck instead."""
    import io
    import logging
    import threading
    import time

    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    out: dict = {"request": f"{method} {target}", "host": host}
    environ = _environ(method, target, host, captured)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = captured
    logging.getLogger().addHandler(handler)
    began = time.monotonic()
    worker = threading.Thread(target=_call, args=(app, environ, out), daemon=True)
    try:
        worker.start()
        worker.join(timeout)
    finally:
        sys.stdout, sys.stderr = saved
        logging.getLogger().removeHandler(handler)
    out["seconds"] = round(time.monotonic() - began, 3)
    if worker.is_alive():
        frame = sys._current_frames().get(worker.ident)
        out["timeout"] = timeout
        out["stuck"] = "".join(traceback.format_stack(frame)) if frame is not None else ""
    out["output"] = captured.getvalue()[-OUTPUT_KEEP:]
    return out


def send_requests(app, spec: dict) -> list[dict]:
    """The requests `check` makes after the import ([check] requests); stops at the first that
    does not answer (its thread still runs: the process must end without waiting for it)."""
    reports = []
    for method, target in spec.get("requests", []):
        report = request_report(app, method, target, spec.get("host", "localhost"), float(spec.get("timeout", 30)))
        reports.append(report)
        if "timeout" in report:
            break
    return reports


def imp_report() -> dict:
    """Whether `import imp; imp.load_source` works here, as Passenger's loader before 6.0.19
    needs (Python 3.12 removed imp; wsgi-shim's compatibility module brings it back)."""
    try:
        import imp
    except Exception as exc:  # noqa: BLE001 - an imp.py that fails to import is as good as none
        return {"usable": False, "error": f"{exc.__class__.__name__}: {exc}"}
    return {"usable": callable(getattr(imp, "load_source", None)), "file": getattr(imp, "__file__", None),
            "wsgi_shim": getattr(imp, "WSGI_SHIM_IMP_COMPAT", None) is not None}


DJANGO_DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]  # what Django allows with DEBUG and no ALLOWED_HOSTS


def django_report(host: str | None) -> dict | None:
    """The Django settings that decide what visitors can reach (static files, the host names it
    answers), read after the import: None when the app is not a configured Django project.
    HOST (the site's own, from `check --url`) is judged by Django's own validate_host."""
    conf = sys.modules.get("django.conf")
    if conf is None:
        return None
    try:
        settings = conf.settings
        if not settings.configured:
            return None
        module = sys.modules.get(getattr(settings, "SETTINGS_MODULE", "") or "")
        report = {"settings_file": getattr(module, "__file__", None) or str(settings.SETTINGS_MODULE),
                  "static_root": str(settings.STATIC_ROOT) if settings.STATIC_ROOT else "",
                  "static_url": str(settings.STATIC_URL or ""),
                  "allowed_hosts": [str(h) for h in settings.ALLOWED_HOSTS], "debug": bool(settings.DEBUG),
                  "staticfiles": "django.contrib.staticfiles" in settings.INSTALLED_APPS,
                  "served_by_app": any("whitenoise" in str(m).lower() for m in settings.MIDDLEWARE)}
        if host:
            from django.http.request import validate_host

            allowed = list(settings.ALLOWED_HOSTS) or (DJANGO_DEBUG_HOSTS if settings.DEBUG else [])
            report["host"] = host
            report["host_allowed"] = bool(validate_host(host, allowed))
        return report
    except Exception as exc:  # noqa: BLE001 - settings that fail to read: report nothing about them
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def main(app_root: str, report_fd: int) -> dict:
    result: dict = {"loaded": False, "python_version": list(sys.version_info[:3])}
    spec = json.loads(os.environ.pop(REQUESTS_ENV, "") or "null")  # not for the app to see
    if sys.version_info >= (3, 12):  # before the app, as Passenger's loader imports it first
        result["imp"] = imp_report()
    try:
        module = _loader().start(app_root)
        result["loaded"] = True
        result["callable"] = callable(getattr(module, "application", None))
        # shim.runtime.loader now; shim.loader in a venv that holds an older wsgi-shim (flat layout)
        loader = sys.modules.get("shim.runtime.loader") or sys.modules.get("shim.loader")
        result["shim_imported"] = "shim" in sys.modules
        start = getattr(loader, "LAST_START", None)
        if start is not None:
            result["state"] = start.state
            result["problems"] = [p.as_dict() for p in start.problems]
            import_despite_config(app_root, result)
            if start.state == "app":
                result["django"] = django_report(os.environ.get("WSGI_SHIM_PROBE_HOST"))
        app = getattr(start, "app", None) or getattr(module, "application", None)
        if spec and callable(app) and (start is None or start.state == "app"):
            result["requests"] = send_requests(app, spec)
    except BaseException as exc:  # noqa: BLE001 - report whatever Passenger would have died of
        result["loader_error"] = "".join(traceback.format_exception(exc))
        result["exception"] = f"{exc.__class__.__name__}: {exc}"
        result["missing_module"] = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    with os.fdopen(report_fd, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.write(json.dumps(result))
    if any("timeout" in r for r in result.get("requests", [])):
        os._exit(0)  # a request still runs in its thread: do not wait for it
    return result


if __name__ == "__main__":
    # Run by path, Python put this file's directory first on sys.path; Passenger would not, and
    # its modules must not shadow the app's top-level names.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    os.environ["WSGI_SHIM_PROBE"] = "1"
    main(sys.argv[1], int(sys.argv[2]))
