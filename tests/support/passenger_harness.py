"""Load passenger_wsgi.py the way Phusion Passenger 6's wsgi-loader.py does, then serve requests.

Usage: python passenger_harness.py APP_ROOT REQUESTS_JSON REPORT_FD   (run as the site's user)
Writes one JSON object to the inherited file descriptor REPORT_FD (a channel of its own, whatever
the app prints): loader_error (what Passenger would turn into its
generic "We're sorry" page) or one response per request: status, headers, body, request_error.
The loading itself is wsgi-shim's one emulation of Passenger's loader (shim/ops/passenger_loader.py),
copied beside this file and imported by path: this file must not import shim.
"""

import io
import json
import os
import sys
import traceback


def passenger_loader():
    """shim/ops/passenger_loader.py, copied beside this file by tests/support/sites.py."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "passenger_loader.py")
    spec = importlib.util.spec_from_file_location("_wsgi_shim_passenger_loader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environ_for(request):
    headers = request.get("headers", {})
    body = request.get("body", "").encode()
    env = {
        "REQUEST_METHOD": request.get("method", "GET"),
        "SCRIPT_NAME": "",
        "PATH_INFO": request.get("path", "/"),
        "QUERY_STRING": request.get("query", ""),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request.get("remote_addr", "127.0.0.1"),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1",
        "PASSENGER_CONNECT_PASSWORD": "x",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.url_scheme": "http",
    }
    for key, value in headers.items():
        env["HTTP_" + key.upper().replace("-", "_")] = value
    return env


def serve(app, request):
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = headers
        return lambda data: None

    out = {"status": None, "headers": {}, "body": "", "request_error": None}
    try:
        result = app(environ_for(request), start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        out["status"] = captured.get("status")
        out["headers"] = dict(captured.get("headers") or [])
        out["body"] = body.decode("utf-8", "replace")
    except Exception:
        out["request_error"] = traceback.format_exc()
    return out


def main():
    app_root, requests, report_fd = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    out = os.fdopen(report_fd, "w")
    loader = passenger_loader()
    loader.drop_script_dir(__file__)
    result = {"loader_error": None, "responses": [], "pid": os.getpid()}
    try:
        app = loader.start(app_root).application
    except BaseException:
        result["loader_error"] = traceback.format_exc()
    else:
        result["responses"] = [serve(app, r) for r in requests]
    result["environ_after"] = {k: os.environ.get(k) for k in json.loads(os.environ.get("HARNESS_WATCH", "[]"))}
    result["cwd_after"] = os.getcwd()
    result["sys_path_head"] = sys.path[:3]
    result["modules"] = sorted(sys.modules)
    out.write(json.dumps(result))
    out.flush()


if __name__ == "__main__":
    main()
