"""The smallest site: a WSGI callable and nothing else (standard library only)."""

import html
import sys


def application(environ, start_response):
    name = html.escape(environ.get("QUERY_STRING", "") or "world")
    body = (f"<!DOCTYPE html>\n<title>plain_wsgi example</title>\n"
            f"<h1>Hello, {name}!</h1>\n<p>plain_wsgi example, Python {sys.version.split()[0]}</p>\n")
    data = body.encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(data)))])
    return [data]
