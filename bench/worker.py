"""One real Passenger app process, without Apache: Passenger's own wsgi-loader.py, started as the
site's user the way Passenger's spawner starts it, then driven over its Unix socket.

    worker = Worker.spawn(site)        # returns once the loader says it is ready
    worker.start_ms, worker.load_ms    # exec to ready; the loader's own "load the app" step
    worker.request()                   # one request in Passenger's session protocol
    worker.cpu_seconds()               # the process's time on a CPU so far
    worker.close()

This is Passenger's loader itself (/usr/share/passenger/helper-scripts/wsgi-loader.py, the file
mod_passenger runs), not an emulation: the app is loaded and served by the same code, with the
same logging set-up and the same per-request loop (one connection per request). What it leaves
out is Passenger's core and Apache, which are the same for every variant.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from bench.sites import BODY, BenchSite
from tests.support.accounts import PROJECT_GROUP, SITE_USER, gid, uid

WSGI_LOADER = Path("/usr/share/passenger/helper-scripts/wsgi-loader.py")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
STEPS = ("subprocess_exec_wrapper", "subprocess_wrapper_preparation", "subprocess_app_load_or_exec",
         "subprocess_listen")
REQUEST = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SCRIPT_NAME": "", "QUERY_STRING": "",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
           "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1",
           "PASSENGER_CONNECT_PASSWORD": "x"}


def _frame(env: dict[str, str]) -> bytes:
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in env.items())
    return struct.pack(">I", len(body)) + body


FRAME = _frame(REQUEST)


class Worker:
    def __init__(self, proc: subprocess.Popen, workdir: Path, pid: int, start_ms: float, load_ms: float,
                 address: str, expect: bytes | None = None) -> None:
        self.proc, self.workdir, self.pid = proc, workdir, pid
        self.start_ms, self.load_ms, self.address = start_ms, load_ms, address
        self.expect = expect

    @classmethod
    def spawn(cls, site: BenchSite, timeout: float = 60, expect: bytes | None = None) -> Worker:
        """EXPECT: bytes the app's 200 response contains (default: it ends with BODY)."""
        workdir = Path(tempfile.mkdtemp(prefix="w", dir="/tmp"))  # short: a Unix socket lives here
        for step in STEPS:
            (workdir / "response" / "steps" / step).mkdir(parents=True)
        (workdir / "args.json").write_text(json.dumps({"app_root": str(site.approot), "socket_dir": str(workdir),
                                                       "startup_file": "passenger_wsgi.py"}))
        for root, dirs, files in os.walk(workdir):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, uid(), gid())
        os.chmod(workdir, 0o700)
        env = {"PATH": "/usr/bin:/bin", "HOME": f"/home/{SITE_USER}", "LANG": "C.UTF-8", "USER": SITE_USER,
               "IN_PASSENGER": "1", "PASSENGER_SPAWN_WORK_DIR": str(workdir), "PYTHONUNBUFFERED": "1"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([RUNUSER, "-u", SITE_USER, "-g", PROJECT_GROUP, "--", str(site.python),
                                 str(WSGI_LOADER)], cwd=site.approot, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        finish = workdir / "response" / "finish"
        deadline = t0 + timeout
        while not finish.exists():
            if proc.poll() is not None or time.perf_counter() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else "timeout"
                proc.kill()
                raise RuntimeError(f"wsgi-loader for {site.name} did not get ready: {err[-2000:]}")
            time.sleep(0.0005)
        start_ms = (time.perf_counter() - t0) * 1000
        step = workdir / "response" / "steps" / "subprocess_app_load_or_exec"
        load_ms = (float((step / "end_time").read_text()) - float((step / "begin_time").read_text())) * 1000
        props = json.loads((workdir / "response" / "properties.json").read_text())
        address = props["sockets"][0]["address"].removeprefix("unix:")
        worker = cls(proc, workdir, _python_child(proc.pid), start_ms, load_ms, address, expect)
        worker.request()  # and it serves the app, not an error page
        return worker

    def request(self) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.address)
            s.sendall(FRAME)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        response = b"".join(chunks)
        served = response.endswith(BODY.encode()) if self.expect is None else self.expect in response
        if not response.startswith(b"HTTP/1.1 200") or not served:
            raise RuntimeError(f"worker answered {response[:300]!r}, not the app")
        return response

    def cpu_seconds(self) -> float:
        """Time on a CPU so far, in nanosecond resolution (schedstat, not clock ticks)."""
        return int(Path(f"/proc/{self.pid}/schedstat").read_text().split()[0]) / 1e9

    def status(self) -> dict[str, int]:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines())
        return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
                "fds": len(os.listdir(f"/proc/{self.pid}/fd"))}

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # the owner pipe: the loader's main loop ends when it closes
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _python_child(pid: int) -> int:
    """runuser may fork: the python process is runuser itself (exec) or its child."""
    for _ in range(200):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        if "python" in exe:
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists() and children.read_text().split():
            return int(children.read_text().split()[0])
        time.sleep(0.005)
    return pid


def per_request(sites: dict[str, BenchSite], rounds: int, requests: int) -> dict:
    """CPU time per request of one real app process per variant, driven over its socket in
    alternated rounds; and what each process holds afterwards (RSS, threads, open files)."""
    from bench.stats import rotations

    workers = {}
    try:
        for name, site in sites.items():
            workers[name] = Worker.spawn(site)
        cpu: dict[str, list[float]] = {n: [] for n in sites}
        for order in rotations(list(sites), rounds):
            for name in order:
                worker = workers[name]
                before = worker.cpu_seconds()
                for _ in range(requests):
                    worker.request()
                cpu[name].append((worker.cpu_seconds() - before) / requests * 1e6)
        return {"cpu_us_per_request": cpu, "requests": requests,
                "process": {n: w.status() for n, w in workers.items()}}
    finally:
        for worker in workers.values():
            worker.close()
