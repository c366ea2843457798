"""What masking costs a failed request when a secret file is large (issue 19 item 4).

    python3 bench/masking.py [--quick]

The review measured 6.5 s of CPU for one failed request with a 3,600-line CA bundle named in
[secret_files]: every line of a secret file is masked, in every printed form (about 19,000
strings), and each was searched for in the entry one after the other. Here the real middleware
(shim.runtime.diagnostics with a real app log and the process's redactor, as shim.runtime.loader
builds them) answers a failing request with a browser's headers, with no secret file and with a
3,600-line PEM bundle as one; variants alternate in rounds. Printed: CPU per failed request for
each, their ratio (goal: close to 1, whatever the file's size), and the one-time cost of building
the masks in a process (at its first write).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.stats import paired_ratios, ratio_text, value_text  # noqa: E402

BUNDLE_LINES = 3600
HEADERS = {"HTTP_HOST": "shop.example.org", "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
           "Gecko/20100101 Firefox/128.0", "HTTP_ACCEPT": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
           "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.5", "HTTP_ACCEPT_ENCODING": "gzip, deflate, br",
           "HTTP_REFERER": "https://shop.example.org/basket?step=2", "HTTP_COOKIE": "sessionid=" + "x" * 32
           + "; csrftoken=" + "y" * 64, "HTTP_X_FORWARDED_FOR": "203.0.113.9"}


def pem_bundle(lines: int = BUNDLE_LINES) -> str:
    """A CA-bundle-like file: PEM blocks of 64-character base64 lines (deterministic)."""
    rng = random.Random(19)
    out = []
    while len(out) < lines:
        out.append("-----BEGIN CERTIFICATE-----")
        out += [base64.b64encode(rng.randbytes(48)).decode() for _ in range(28)]
        out.append("-----END CERTIFICATE-----")
    return "\n".join(out[:lines]) + "\n"


def failing_view(environ, start_response):
    raise ValueError(f"basket {environ.get('PATH_INFO')} has no item 17")


def middleware(secret_text: str | None, log_dir: Path):
    from shim.runtime import diagnostics
    from shim.runtime.applog import AppLog
    from shim.runtime.config import LoggingConfig
    from shim.runtime.redact import MIN_MASK_LENGTH, Redactor, structured_values

    values = []
    if secret_text is not None:  # as Config.secret_values() collects a secret file's contents
        values = [v for v in (secret_text, *structured_values(secret_text)) if len(v.strip()) >= MIN_MASK_LENGTH]
    redact = Redactor(values)
    cfg = LoggingConfig(path=log_dir / "app.log", max_bytes=1 << 20, backups=1)
    log = AppLog(cfg.path, cfg.max_bytes, cfg.backups, redact)
    app = diagnostics.wrap(failing_view, cfg, log, redact)
    if hasattr(app.reporter, "throttle"):  # every request logged in full: the cost measured is masking's
        app.reporter.throttle.full = 10 ** 9
    return app, redact


def request() -> dict:
    return {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/basket/checkout", "QUERY_STRING": "step=3",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "203.0.113.9", **HEADERS}


def cpu_per_request(app, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        b"".join(app(request(), lambda *a: None))
    return (time.process_time() - start) / n * 1000


def measure(rounds: int = 5, requests: int = 200) -> dict:
    bundle = pem_bundle()
    variants = {"no secret file": None, f"{BUNDLE_LINES}-line PEM bundle as a secret file": bundle}
    ms: dict[str, list[float]] = {k: [] for k in variants}
    build_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        apps = {}
        for i, (name, text) in enumerate(variants.items()):
            app, redact = middleware(text, Path(tmp) / str(i))
            if text is not None:
                start = time.process_time()
                redact("warm up: builds the masks, as a process's first write does")
                build_ms.append((time.process_time() - start) * 1000)
            apps[name] = app
        names = list(variants)
        for r in range(rounds):
            for name in names[r % 2:] + names[:r % 2]:
                ms[name].append(cpu_per_request(apps[name], requests))
    big, none = names[1], names[0]
    return {"ms_per_failed_request": ms, "ratio": paired_ratios(ms[big], ms[none]),
            "build_ms": build_ms, "bundle_bytes": len(bundle)}


def rows(data: dict) -> list[tuple[str, str, str]]:
    ms = data["ms_per_failed_request"]
    names = list(ms)
    out = [(f"a. failed request, masking: {n}", value_text(v, "ms", 2),
            "1" if i == 0 else ratio_text(data["ratio"])) for i, (n, v) in enumerate(ms.items())]
    out.append((f"a. failed request, masking: building the masks of {names[1]} (once a process)",
                value_text(data["build_ms"], "ms", 0), ""))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = measure(rounds=3 if args.quick else 9, requests=100 if args.quick else 300)
    for label, value, ratio in rows(data):
        print(f"{label:<90} {value:<28} {ratio}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
