"""tests/support/load.py, the bounded loopback load generator the deploy tests and benchmarks use:
it counts what a real HTTP server answered, stops at its bounds, and refuses other hosts."""

from __future__ import annotations

import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.load import Load, LoadResult


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counter = itertools.count()

    def do_GET(self) -> None:
        n = next(self.counter)
        status, kind = ((200, None), (503, "maintenance"), (500, "error"))[n % 3]
        body = f"r{n % 3}".encode()
        self.send_response(status)
        if kind:
            self.send_header("X-Wsgi-Shim", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_counts_statuses_kinds_and_stops_at_its_bound(server):
    with Load(server, clients=3, limit=30, max_requests=90) as load:
        assert load.wait(30)  # stopped by max_requests, long before the time limit
    result = load.stop()
    assert 90 <= len(result.samples) <= 93
    counts = result.counts()
    assert set(counts) == {(200, "app"), (503, "maintenance"), (500, "error")}
    failures = result.failures()
    assert failures and all(s.status == 500 for s in failures)
    assert not any(LoadResult.acceptable(s, maintenance_ok=False) for s in result.samples if s.status == 503)
    assert result.bodies()[b"r0"] == counts[(200, "app")]
    assert result.worst_latency() >= result.percentile(0.5) > 0
    assert "requests:" in result.summary()


def test_stops_after_its_time_limit(server):
    with Load(server, clients=2, limit=0.5) as load:
        load._threads[0].join(10)
        assert not load._threads[0].is_alive()  # ended by the time limit, not by stop()
    assert load.result.samples


@pytest.mark.parametrize("url", ["http://example.org/", "https://127.0.0.1/", "http://10.0.0.1:80/"])
def test_only_loopback(url):
    with pytest.raises(ValueError, match="loopback"):
        Load(url)
