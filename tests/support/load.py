"""A bounded load generator for loopback: N client threads request one URL without pause for at
most a given time, recording every response's status, its X-Wsgi-Shim kind and its latency.

    from tests.support.load import Load
    with Load("http://127.0.0.1:8080/", clients=8, limit=120) as load:
        ...  # deploy, restart, whatever is measured
    print(load.result.summary())      # counts by (status, kind), failures, worst latency

Bounded on purpose (PROTOCOL: load tests target 127.0.0.1 only, bounded in count and time):
only loopback URLs are accepted, `limit` seconds and `max_requests` cap each run. Used by the
deploy tests (tests/e2e/test_deploy_load.py) and the benchmarks (bench/deploy_latency.py).
Standard library only; keep-alive connections (http.client), one per thread, reopened on error.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    start: float        # time.monotonic() when the request was sent
    latency: float      # seconds until the whole body was read (or the error)
    status: int         # 0 when the connection failed
    kind: str           # X-Wsgi-Shim header (maintenance, error, app-error), "app", or the error
    body: bytes = b""   # the first bytes of the body (to tell versions apart)


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)

    def counts(self) -> Counter:
        """(status, kind) -> number of responses."""
        return Counter((s.status, s.kind) for s in self.samples)

    def bodies(self) -> Counter:
        return Counter(s.body for s in self.samples if s.status == 200)

    def failures(self) -> list[Sample]:
        """Anything but the app's 200 or the maintenance page's 503."""
        return [s for s in self.samples if not self.acceptable(s, maintenance_ok=True)]

    @staticmethod
    def acceptable(s: Sample, maintenance_ok: bool) -> bool:
        if s.status == 200 and s.kind == "app":
            return True
        return maintenance_ok and s.status == 503 and s.kind == "maintenance"

    def worst_latency(self, since: float | None = None, until: float | None = None) -> float:
        window = [s.latency for s in self.samples
                  if (since is None or s.start >= since) and (until is None or s.start <= until)]
        return max(window, default=0.0)

    def percentile(self, q: float) -> float:
        values = sorted(s.latency for s in self.samples)
        return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0

    def summary(self) -> str:
        parts = [f"{n}x {status} {kind}" for (status, kind), n in sorted(self.counts().items())]
        return (f"{len(self.samples)} requests: " + ", ".join(parts)
                + f"; worst {self.worst_latency() * 1000:.0f} ms, p50 {self.percentile(0.5) * 1000:.0f} ms")


def _loopback(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load generator only targets http://127.0.0.1 (loopback), not {url!r}")
    return parts


class Load:
    """Start CLIENTS threads on enter; stop them on exit, on `stop()`, after LIMIT seconds or
    after MAX_REQUESTS responses in all, whichever comes first."""

    def __init__(self, url: str, clients: int = 8, limit: float = 300, max_requests: int = 2_000_000,
                 timeout: float = 30, keep_body: int = 64):
        self.parts = _loopback(url)
        self.clients, self.limit, self.max_requests = clients, limit, max_requests
        self.timeout, self.keep_body = timeout, keep_body
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self.deadline = time.monotonic() + self.limit
        for i in range(self.clients):
            t = threading.Thread(target=self._client, name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a bound (LIMIT or MAX_REQUESTS) ends the run; False on TIMEOUT first."""
        return self._stop.wait(timeout if timeout is not None else self.limit + 1) or \
            time.monotonic() >= self.deadline

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self.result

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.parts.hostname, self.parts.port or 80, timeout=self.timeout)

    def _client(self) -> None:
        path = self.parts.path or "/"
        if self.parts.query:
            path += "?" + self.parts.query
        conn = self._connect()
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            sample = self._one(conn, path)
            if sample.status == 0:
                conn.close()
                conn = self._connect()
            with self._lock:
                self.result.samples.append(sample)
                if len(self.result.samples) >= self.max_requests:
                    self._stop.set()
        conn.close()

    def _one(self, conn: http.client.HTTPConnection, path: str) -> Sample:
        start = time.monotonic()
        try:
            conn.request("GET", path, headers={"User-Agent": "wsgi-shim-load"})
            response = conn.getresponse()
            body = response.read()
            kind = response.getheader("X-Wsgi-Shim") or ("app" if response.status < 500 else "server-error")
            return Sample(start, time.monotonic() - start, response.status, kind, body[:self.keep_body])
        except (OSError, http.client.HTTPException) as exc:
            return Sample(start, time.monotonic() - start, 0, type(exc).__name__)
