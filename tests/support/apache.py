"""A private, real Apache 2.4 + mod_passenger instance for end-to-end tests.

    server = ApacheServer(workdir)               # every file it writes lives under workdir
    url = server.serve("demo", app_root, docroot, user="shimsite", group="shimproj",
                       python="/srv/.../venv/bin/python")  # starts, or restarts with it
    r = http_get(url + "/")                      # Response(status, headers, body); no raise on 5xx
    r = poll(url + "/", lambda r: r.status == 200, timeout=20)
    server.error_log_text()                      # Apache's and Passenger's log since start()
    server.stop()                                # Apache, Passenger watchdog/core and apps gone

Each site gets its own loopback port (one Listen + one VirtualHost), so a test addresses a site
by URL alone, without Host headers. The system's own Apache configuration is never read or
touched: the config names only modules from /usr/lib/apache2/modules. The workdir and the
directories above it must be searchable by others (www-data and the app user reach Passenger's
sockets there) and short (Unix socket paths); both are checked before starting.

Needs root (Passenger switches to PassengerUser only when its core runs as root) and the Debian
packages apache2 + libapache2-mod-passenger.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Self

APACHE_BIN = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
PASSENGER_ROOT = "/usr/lib/ruby/vendor_ruby/phusion_passenger/locations.ini"
WEB_USER = "www-data"
# Passenger puts Unix sockets under PassengerInstanceRegistryDir; the longest is
# REGISTRY/passenger.XXXXXXX/agents.s/watchdog_api, and sun_path holds 107 bytes. Longer paths
# make Passenger fail to initialize while Apache runs on and answers every request with 404.
SOCKET_SUFFIX_LEN = len("/passenger.XXXXXXX/agents.s/watchdog_api")
SUN_PATH_MAX = 107
PASSENGER_INIT_FAILED = "Passenger could not be initialized"
# Logged by Apache's master once a (re)start has read the config and Passenger's core is up.
READY_MARK = "resuming normal operations"


class ApacheError(RuntimeError):
    """Apache did not start or stop cleanly; the message carries the error log tail."""


@dataclass(frozen=True)
class SiteSpec:
    name: str
    port: int
    body: str  # the directives inside its <VirtualHost>

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# Below Linux's ephemeral range (32768-60999), so that no outgoing connection of another
# process takes the port between our check and Apache's bind (seen with kernel-picked ports).
PORT_RANGE = (20000, 32000)
BUSY_PORT = re.compile(r"could not bind to address \[?[\d.:]*?\]?:(\d+)")


def free_port(taken: set[int] | frozenset[int] = frozenset()) -> int:
    """A loopback port nobody listens on right now."""
    for _ in range(500):
        port = random.randrange(*PORT_RANGE)
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ApacheError(f"no free port in {PORT_RANGE}")


def apache_available() -> str | None:
    """None when a real Apache + Passenger can be started here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root: Passenger runs apps as PassengerUser only when started by root"
    if not os.access(APACHE_BIN, os.X_OK):
        return f"{APACHE_BIN} missing: apt-get install apache2 libapache2-mod-passenger"
    if not (MODULES / "mod_passenger.so").exists():
        return "mod_passenger missing: apt-get install libapache2-mod-passenger"
    return None


def _world_searchable_chain(path: Path) -> Path | None:
    """First directory from / down to path that others cannot enter, or None."""
    path = path.resolve()
    for p in [*reversed(path.parents), path]:
        if not os.stat(p).st_mode & 0o001:
            return p
    return None


class ApacheServer:
    """One private Apache: add_site()/add_vhost(), then start(); later sites via serve()/apply()."""

    def __init__(self, workdir: str | Path, stat_throttle_rate: int | None = 1,
                 log_level: str = "warn", passenger_log_level: int = 3) -> None:
        self.workdir = Path(workdir)
        self.stat_throttle_rate = stat_throttle_rate
        self.log_level = log_level
        self.passenger_log_level = passenger_log_level
        self.sites: dict[str, SiteSpec] = {}
        self.conf = self.workdir / "httpd.conf"
        self.pid_file = self.workdir / "httpd.pid"
        self.error_log = self.workdir / "error.log"
        self.access_log = self.workdir / "access.log"
        self.registry_dir = self.workdir / "pr"  # short: see SOCKET_SUFFIX_LEN
        self.tmp_dir = self.workdir / "tmp"
        self._pid: int | None = None
        self._log_offset = 0  # error log size when start() began
        self._ready_offset = 0  # ... when the latest start() or reload() began

    # -- configuration -------------------------------------------------------------------------
    def add_site(self, name: str, app_root: str | Path, docroot: str | Path, *, user: str,
                 group: str, python: str | Path, restart_dir: str | Path | None = None,
                 port: int | None = None, extra: str = "") -> str:
        """Declare a site; returns its base URL (http://127.0.0.1:PORT).

        extra: more directives for its VirtualHost, e.g. "PassengerMinInstances 1".
        """
        restart_dir = restart_dir or Path(app_root) / "tmp"
        body = "\n".join([
            f"ServerName {name}.e2e.test",
            f'DocumentRoot "{docroot}"',
            f'PassengerAppRoot "{app_root}"',
            "PassengerAppType wsgi",
            "PassengerStartupFile passenger_wsgi.py",
            f'PassengerPython "{python}"',
            f"PassengerUser {user}",
            f"PassengerGroup {group}",
            f'PassengerRestartDir "{restart_dir}"',
            "PassengerFriendlyErrorPages off",
            extra,
            f'<Directory "{docroot}">',
            "    Require all granted",
            "    Options FollowSymLinks",
            "</Directory>",
        ])
        return self.add_vhost(name, body, port)

    def add_vhost(self, name: str, body: str, port: int | None = None) -> str:
        """Declare a site from VirtualHost directives used verbatim (e.g. a printed snippet)."""
        if name in self.sites:
            raise ValueError(f"site {name!r} already added")
        taken = {s.port for s in self.sites.values()}
        if port is None or port in taken:
            port = free_port(taken)
        spec = SiteSpec(name=name, port=port, body=body)
        self.sites[name] = spec
        return spec.url

    def apply(self) -> None:
        """Make the declared sites live: start() the first time, reload() after.

        A reload restarts Passenger's core, so every app of this server is respawned.
        """
        if self.running():
            self.reload()
        else:
            self.start()

    def serve(self, name: str, app_root: str | Path, docroot: str | Path, **kw: object) -> str:
        """add_site() and apply() at once."""
        self.add_site(name, app_root, docroot, **kw)  # type: ignore[arg-type]
        was_running = self.running()
        try:
            self.apply()
        except ApacheError:
            # Take the site out again so that one bad site does not fail every later test.
            del self.sites[name]
            if was_running and not self.running() and self.sites:
                self.start()
            raise
        return self.site_url(name)  # the port may have been re-picked

    def site_url(self, name: str) -> str:
        return self.sites[name].url

    @property
    def url(self) -> str:
        """URL of the first site added (the common one-site case)."""
        return next(iter(self.sites.values())).url

    def config_text(self) -> str:
        w = self.workdir
        lines = [
            "ServerRoot /etc/apache2",
            f"PidFile {self.pid_file}",
            f"ErrorLog {self.error_log}",
            f"LogLevel {self.log_level}",
            f"Mutex file:{w / 'mutex'} default",
            f"DefaultRuntimeDir {w / 'run'}",
            "ServerName 127.0.0.1",
            f"User {WEB_USER}",
            f"Group {WEB_USER}",
            f"LoadModule mpm_event_module {MODULES / 'mod_mpm_event.so'}",
            f"LoadModule authz_core_module {MODULES / 'mod_authz_core.so'}",
            f"LoadModule mime_module {MODULES / 'mod_mime.so'}",
            f"LoadModule passenger_module {MODULES / 'mod_passenger.so'}",
            "TypesConfig /etc/mime.types",
            'LogFormat "%h %t \\"%r\\" %>s %b %D" e2e',
            f"CustomLog {self.access_log} e2e",
            f"PassengerRoot {PASSENGER_ROOT}",
            "PassengerDefaultRuby /usr/bin/ruby",
            "PassengerDisableSecurityUpdateCheck on",
            "PassengerDisableAnonymousTelemetry on",
            f"PassengerInstanceRegistryDir {self.registry_dir}",
            # Server level only (a VirtualHost rejects it); None keeps Passenger's default, 10 s.
            *([f"PassengerStatThrottleRate {self.stat_throttle_rate}"]
              if self.stat_throttle_rate is not None else []),
            f"PassengerLogLevel {self.passenger_log_level}",
            "<Directory />",
            "    Require all denied",
            "    AllowOverride None",
            "</Directory>",
        ]
        for s in self.sites.values():
            lines += ["", f"# site {s.name}", f"Listen 127.0.0.1:{s.port}",
                      f"<VirtualHost 127.0.0.1:{s.port}>",
                      *(f"    {line}" for line in s.body.splitlines() if line.strip()),
                      "</VirtualHost>"]
        return "\n".join(lines) + "\n"

    # -- lifecycle -----------------------------------------------------------------------------
    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Apache workers (www-data) and the app processes (PassengerUser) must reach the
        # Passenger instance directory under workdir, so the whole chain must be o+x.
        os.chmod(self.workdir, 0o755)
        blocked = _world_searchable_chain(self.workdir)
        if blocked is not None:
            raise ApacheError(f"{blocked} is not world-searchable (o+x); the Passenger instance "
                              f"dir under {self.workdir} would be unreachable for "
                              f"{WEB_USER} and the app user")
        longest = len(str(self.registry_dir.resolve())) + SOCKET_SUFFIX_LEN
        if longest > SUN_PATH_MAX:
            raise ApacheError(f"{self.workdir} is too deep: Passenger's sockets under it would be "
                              f"{longest} bytes long, more than a Unix socket path may be "
                              f"({SUN_PATH_MAX}); give ApacheServer a shorter directory")
        for d in ("run", "mutex", self.registry_dir.name):
            (self.workdir / d).mkdir(exist_ok=True)
            os.chmod(self.workdir / d, 0o755)
        self.tmp_dir.mkdir(exist_ok=True)
        os.chmod(self.tmp_dir, 0o1777)  # like /tmp: apps inherit TMPDIR
        self.conf.write_text(self.config_text())

    def _apachectl(self, action: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        # TMPDIR: Passenger writes spawn error reports (passenger-error-*.html) there.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TMPDIR": str(self.tmp_dir)}
        return subprocess.run([APACHE_BIN, "-f", str(self.conf), "-k", action],
                              check=False, capture_output=True, text=True, timeout=timeout,
                              env=env)

    def start(self, timeout: float = 30, attempts: int = 5) -> None:
        """Start Apache and wait until every site's port accepts connections.

        A port taken by someone else meanwhile is replaced by another one (see site_url()).
        """
        if not self.sites:
            raise ValueError("add_site() at least once before start()")
        if self.running():
            raise ApacheError(f"already running (pid {self._pid})")
        for attempt in range(attempts):
            self._write_config()
            self._log_offset = self.error_log_size()
            self._ready_offset = self._log_offset
            self.pid_file.unlink(missing_ok=True)
            r = self._apachectl("start")
            if r.returncode == 0:
                break
            if attempt + 1 == attempts or not self._repick_busy_port(r.stderr + r.stdout):
                raise ApacheError(self._failure("apache2 -k start failed", r))
        try:
            self._wait_ready(timeout)
        except ApacheError:
            self.stop()
            raise

    def _repick_busy_port(self, text: str) -> bool:
        """Give the site whose port Apache could not bind a new one; False if that was not it."""
        m = BUSY_PORT.search(text)
        if not m:
            return False
        busy = int(m.group(1))
        for name, spec in self.sites.items():
            if spec.port == busy:
                taken = {s.port for s in self.sites.values()} | {busy}
                self.sites[name] = dataclasses.replace(spec, port=free_port(taken))
                return True
        return False

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {s.port for s in self.sites.values()}
        while True:
            if self._pid is None and self.pid_file.exists():
                text = self.pid_file.read_text().strip()
                if text.isdigit():
                    self._pid = int(text)
            for port in list(pending):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        pending.discard(port)
                except OSError:
                    pass
            if self._pid is not None and not pending:
                fresh = self.error_log_after(self._ready_offset)
                if PASSENGER_INIT_FAILED in fresh:
                    raise ApacheError(self._failure("Apache runs, but Passenger did not start"))
                if READY_MARK in fresh:
                    return
            if self._pid is not None and not _alive(self._pid):
                raise ApacheError(self._failure("apache2 exited during start-up"))
            if time.monotonic() > deadline:
                raise ApacheError(self._failure(
                    f"ports {sorted(pending)} not answering after {timeout} s"))
            time.sleep(0.1)

    def reload(self, timeout: float = 30) -> None:
        """Rewrite the config (e.g. after add_site) and have the running master re-read it.

        `-k restart` (SIGHUP), not `-k graceful`: with mod_passenger 6.0.17 the master died of
        "double free or corruption" within a few graceful restarts (seen at the 6th), while 59
        plain restarts in a row were fine. Either way Passenger's core and all apps restart.
        """
        self._write_config()
        self._ready_offset = self.error_log_size()
        r = self._apachectl("restart")
        if r.returncode != 0:
            raise ApacheError(self._failure("apache2 -k restart failed", r))
        # Ports of existing sites answer throughout; wait for the new generation itself.
        try:
            self._wait_ready(timeout)
        except ApacheError:
            # The master exited: a port that cannot be bound (start afresh on another port), or,
            # rarely, mod_passenger 6.0.17 dying of "double free or corruption" in a restart (seen
            # in CI once even with -k restart): start afresh, once.
            if self.running():
                raise
            self._repick_busy_port(self.error_log_after(self._ready_offset))
            self.stop()
            self.start(timeout)

    def running(self) -> bool:
        return self._pid is not None and _alive(self._pid)

    def stop(self, timeout: float = 20) -> None:
        """Stop Apache by its pid file and make sure no process it started is left behind.

        Passenger's watchdog is Apache's child and the core and the apps are the watchdog's;
        they are collected before stopping so that none outlives the test session. Each is
        remembered with its start time, so a recycled pid is never signalled.
        """
        pid = self._pid
        if pid is None and self.pid_file.exists():
            text = self.pid_file.read_text().strip()
            pid = int(text) if text.isdigit() else None
        # Processes still running with our config: workers outlive a master that crashed.
        roots = self._conf_pids() | ({pid} if pid is not None else set())
        if not roots:
            return
        everyone = set(roots)
        for root in roots:
            everyone |= _descendants(root)
        family = _identities(everyone | self._passenger_pids())
        master_stops = pid is not None and _alive(pid) and self.conf.exists()
        if master_stops:
            self._apachectl("stop")
        # Without a master to shut them down, the rest is signalled right away below.
        deadline = time.monotonic() + (timeout if master_stops else 0)
        while time.monotonic() < deadline and any(_same(p, t) for p, t in family.items()):
            family.update(_identities(self._passenger_pids()))
            time.sleep(0.1)
        leftover = {p: t for p, t in family.items() if _same(p, t)}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p, t in leftover.items():
                if _same(p, t):
                    try:
                        os.kill(p, sig)
                    except ProcessLookupError:
                        pass
            end = time.monotonic() + 3
            while time.monotonic() < end and any(_same(p, t) for p, t in leftover.items()):
                time.sleep(0.05)
            leftover = {p: t for p, t in leftover.items() if _same(p, t)}
        self._pid = None
        if leftover:
            raise ApacheError(f"processes still alive after SIGKILL: {sorted(leftover)}")

    def _conf_pids(self) -> set[int]:
        """Apache processes (master or workers) started with this server's config file."""
        found = set()
        want = str(self.conf).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"apache2") and want in args:
                found.add(int(entry))
        return found

    def _passenger_pids(self) -> set[int]:
        """Watchdog and core pids that Passenger records in its instance directory."""
        pids: set[int] = set()
        if not self.registry_dir.is_dir():
            return pids
        for pidfile in self.registry_dir.glob("passenger.*/*.pid"):
            try:
                text = pidfile.read_text().strip()
            except OSError:
                continue
            if text.isdigit():
                pids.add(int(text))
        return pids

    # -- diagnostics ---------------------------------------------------------------------------
    def error_log_text(self, since_start: bool = True) -> str:
        """Apache's (and Passenger's) error log, by default only what this start() wrote."""
        if not self.error_log.exists():
            return ""
        with open(self.error_log, "rb") as f:
            if since_start:
                f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def error_log_size(self) -> int:
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def error_log_after(self, offset: int) -> str:
        if not self.error_log.exists():
            return ""
        with open(self.error_log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def _failure(self, what: str, r: subprocess.CompletedProcess[str] | None = None) -> str:
        parts = [what]
        if r is not None:
            parts.append(f"exit {r.returncode}\nstdout: {r.stdout.strip()}\n"
                         f"stderr: {r.stderr.strip()}")
        tail = "\n".join(self.error_log_text().splitlines()[-40:])
        parts.append(f"--- {self.error_log} (tail) ---\n{tail}")
        parts.append(f"--- config {self.conf} ---\n{self.conf.read_text()}")
        return "\n".join(parts)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (with the pid, a unique identity)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _identities(pids: set[int]) -> dict[int, int]:
    found = {p: _start_time(p) for p in pids if _alive(p)}
    return {p: t for p, t in found.items() if t is not None}


def _same(pid: int, start_time: int) -> bool:
    """Still alive and still the very process we saw (not a new one with a recycled pid)."""
    return _alive(pid) and _start_time(pid) == start_time


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


# -- HTTP ----------------------------------------------------------------------------------------
@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: str


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> Response:
    """GET without raising on 4xx/5xx (error pages are what these tests look at)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""),
                     headers=headers or {})
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    finally:
        conn.close()


def poll(url: str, until, timeout: float = 20, interval: float = 0.3,
         headers: dict[str, str] | None = None) -> Response:
    """GET url until until(response) is true; on timeout raise with the last response seen."""
    deadline = time.monotonic() + timeout
    last: Response | None = None
    error: Exception | None = None
    while True:
        try:
            last = http_get(url, headers=headers)
            error = None
            if until(last):
                return last
        except OSError as e:  # connection reset while Passenger restarts the app, etc.
            error = e
        if time.monotonic() > deadline:
            seen = (f"{last.status} {last.headers}\n{last.body[:2000]}" if last else repr(error))
            raise AssertionError(f"{url}: condition not met within {timeout} s; last: {seen}")
        time.sleep(interval)
