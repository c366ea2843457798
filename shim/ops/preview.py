"""`wsgi-shim serve` and `wsgi-shim demo`: preview a site on this machine without Apache.

The app runs the way Passenger 6 runs it: a child process started with the site's
passenger_python, cwd = the app root, the app root first on sys.path, the startup file
(passenger_wsgi.py) loaded as module ``passenger_wsgi`` and its ``application`` served -- here on
waitress instead of Passenger's request loop. Run as root, the child runs as the site's
passenger_user/passenger_group, as Passenger does.

This process only supervises: it owns the listening socket (so requests wait, rather than fail,
while the app restarts), watches tmp/restart.txt and starts a new app process when its mtime
changes. tmp/maint.txt needs nothing here: get_app() honours it when the new process starts.
Never imported by get_app().
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from shim.runtime.layout import Site

POLL_SECONDS = 0.25
STOP_SECONDS = 5.0

# Runs in the app process, under the site's Python: standard library + waitress only.
# Mirrors /usr/share/passenger/helper-scripts/wsgi-loader.py (load_app), minus the `imp` module
# that Python 3.12 removed.
CHILD = r"""
import importlib.util, os, socket, sys
mode, fd, startup = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    import waitress
except ImportError:
    # The site's venv lacks waitress (an older shim): borrow the supervisor's copy.
    sys.path.append(os.environ["WSGI_SHIM_PREVIEW_WAITRESS"])
    import waitress
sock = socket.socket(fileno=fd)
if mode == "app":
    # -c puts '' first on sys.path; Passenger's loader is a script, so drop it like Passenger
    # would not have it, then do what its load_app() does.
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    sys.path.insert(0, os.getcwd())
    spec = importlib.util.spec_from_file_location("passenger_wsgi", startup)
    module = importlib.util.module_from_spec(spec)
    sys.modules["passenger_wsgi"] = module
    spec.loader.exec_module(module)
    app = module.application
else:
    # The app process failed to start: answer like Passenger does, details in the terminal.
    body = (b"<!DOCTYPE html><title>We're sorry, but something went wrong</title>"
            b"<h1>We're sorry, but something went wrong</h1><p>The app process could not start."
            b" Under Passenger the details would be in Apache's error log; in this preview they"
            b" are in the terminal running wsgi-shim serve.</p>")
    def app(environ, start_response):
        start_response("500 Internal Server Error", [("Content-Type", "text/html"),
                                                     ("Content-Length", str(len(body)))])
        return [body]
waitress.serve(app, sockets=[sock], ident="wsgi-shim preview", _quiet=True)
"""


def say(message: str) -> None:
    print(f"[wsgi-shim serve] {message}", file=sys.stderr, flush=True)


def _read_passenger(site: Site) -> dict:
    try:
        with open(site.config_toml, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        say(f"cannot read {site.config_toml} ({exc}); the app's own error page will say more")
        return {}
    section = data.get("passenger", {})
    return section if isinstance(section, dict) else {}


def _python_for(passenger: dict) -> str:
    python = passenger.get("passenger_python")
    if isinstance(python, str) and python and os.access(python, os.X_OK):
        return python
    say(f"WARNING: passenger_python {python!r} is not an executable file; "
        f"running the app with {sys.executable} instead (Passenger could not start it)")
    return sys.executable


def _identity(passenger: dict) -> dict:
    """As root, run the app as passenger_user/passenger_group, as Passenger does."""
    if os.geteuid() != 0:
        return {}
    user = passenger.get("passenger_user")
    if not isinstance(user, str) or not user or user == "root":
        return {}
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        say(f"WARNING: passenger_user {user!r} does not exist; running the app as root")
        return {}
    group = passenger.get("passenger_group")
    try:
        gid = grp.getgrnam(group).gr_gid if isinstance(group, str) and group else pw.pw_gid
    except KeyError:
        say(f"WARNING: passenger_group {group!r} does not exist; using {user}'s primary group")
        gid = pw.pw_gid
    return {"user": pw.pw_uid, "group": gid, "extra_groups": os.getgrouplist(user, gid),
            "home": pw.pw_dir, "name": user}


def _mtime(path: Path) -> int | None:
    """Whole seconds, as Passenger compares it: a second touch within the same second is
    ignored there, so it is here (`wsgi-shim restart` always moves it a whole second on)."""
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return None


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """One app process at a time on a socket this process keeps open."""

    def __init__(self, site: Site, sock: socket.socket) -> None:
        self.site = site
        self.sock = sock
        self.child: subprocess.Popen | None = None
        self.failed = False
        self.spare: str | None = None

    def start(self) -> None:
        passenger = _read_passenger(self.site)
        python = _python_for(passenger)
        startup = passenger.get("passenger_startup_file") or "passenger_wsgi.py"
        who = _identity(passenger)
        env = dict(os.environ, PYTHONUNBUFFERED="1", WSGI_SHIM_PREVIEW="1",
                   WSGI_SHIM_PREVIEW_WAITRESS=self.spare_waitress())
        # Passenger does not get the developer's PYTHONPATH; an app that only imports with it
        # would fail there, so it should fail here too.
        for name in ("PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        kwargs: dict = {}
        if who:
            env.update(HOME=who["home"], USER=who["name"], LOGNAME=who["name"])
            kwargs = {"user": who["user"], "group": who["group"],
                      "extra_groups": who["extra_groups"]}
        try:
            self.child = subprocess.Popen(
                [python, "-c", CHILD, "app", str(self.sock.fileno()), str(startup)],
                cwd=self.site.approot, env=env, pass_fds=(self.sock.fileno(),), **kwargs)
        except OSError as exc:
            # e.g. passenger_python not executable by passenger_user: Passenger fails too.
            say(f"cannot start the app process with {python}: {exc}; serving an error page "
                "until tmp/restart.txt changes")
            self.start_error_page()
            return
        self.failed = False
        as_user = f" as {who['name']}" if who else ""
        say(f"app process {self.child.pid} started{as_user}: {python} loading "
            f"{self.site.approot / startup}")

    def spare_waitress(self) -> str:
        """A world-readable copy of our waitress, for a site Python that lacks it: ours may sit
        where the site's user cannot read (e.g. under /root)."""
        if self.spare is None:
            import waitress

            self.spare = tempfile.mkdtemp(prefix="wsgi-shim-preview-")
            shutil.copytree(Path(waitress.__file__).parent, Path(self.spare) / "waitress",
                            ignore=shutil.ignore_patterns("__pycache__", "tests"))
            for root, dirs, files in os.walk(self.spare):
                os.chmod(root, 0o755)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)
        return self.spare

    def start_error_page(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", CHILD, "error", str(self.sock.fileno()), ""],
            pass_fds=(self.sock.fileno(),))
        self.failed = True

    def stop(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def serve(site: Site, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Serve SITE until interrupted, restarting the app when tmp/restart.txt changes."""
    if not site.passenger_wsgi.is_file():
        print(f"wsgi-shim serve: no {site.passenger_wsgi}: not a site "
              f"(create one with: wsgi-shim install {site.site})", file=sys.stderr)
        return 1
    try:
        sock = listen(host, port)
    except OSError as exc:
        print(f"wsgi-shim serve: cannot listen on {host}:{port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    url = f"http://{shown}:{bound[1]}/"

    # Stop cleanly (and take the app process along) on SIGTERM as on Ctrl-C.
    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    sup = Supervisor(site, sock)
    restart_txt = site.restart_txt
    seen = _mtime(restart_txt)
    try:
        sup.start()
        say(f"serving {site.approot} on {url}  (Ctrl-C stops)")
        say(f"restart the app: touch {restart_txt}   maintenance: wsgi-shim maint on|off "
            f"{site.site}")
        while True:
            time.sleep(POLL_SECONDS)
            now = _mtime(restart_txt)
            # As Passenger: a changed mtime restarts, a deleted file triggers nothing.
            if now is not None and now != seen:
                seen = now
                say(f"{restart_txt} changed: restarting the app process")
                sup.stop()
                sup.start()
                continue
            child = sup.child
            if child is not None and child.poll() is not None and not sup.failed:
                say(f"app process {child.pid} exited with code {child.returncode} (output "
                    "above); serving an error page until tmp/restart.txt changes")
                sup.start_error_page()
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        sup.stop()
        sock.close()
        if sup.spare:
            shutil.rmtree(sup.spare, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


# --- demo ------------------------------------------------------------------------------------

HELLO = '''"""The demo site's app: a plain WSGI callable (config.toml: [wsgi] app = "hello.application")."""

import os
import sys
import time

STARTED = time.strftime("%H:%M:%S")


def application(environ, start_response):
    body = f"""<!DOCTYPE html>
<title>wsgi-shim demo</title>
<h1>Hello from the wsgi-shim demo</h1>
<p>This page comes from <code>hello.py</code>, loaded through <code>passenger_wsgi.py</code>
exactly as Passenger loads it. App process {os.getpid()} started at {STARTED},
Python {sys.version.split()[0]}.</p>
<p>Try, in another terminal:</p>
<pre>
wsgi-shim maint on {APPROOT}      # then reload: the maintenance page
wsgi-shim maint off {APPROOT}
wsgi-shim check {APPROOT}
echo 'oops =' >> {APPROOT}/hello.py; wsgi-shim restart {APPROOT}   # a readable error page
</pre>
""".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def _cli(python: str, *args: str) -> int:
    """Run `wsgi-shim ARGS` with PYTHON (the demo site's venv, which sees this wsgi-shim)."""
    code = "import sys; from shim.cli import main; sys.exit(main())"
    return subprocess.call([python, "-c", code, *args], stdin=subprocess.DEVNULL)


def _demo_python(dir: Path) -> str | None:
    """The running venv's python; outside a venv, a venv in DIR that sees this Python's packages
    (the shim runs sites only from a venv, and this Python has wsgi-shim and waitress)."""
    if sys.prefix != sys.base_prefix:
        return sys.executable
    venv = dir / "venv"
    print(f"wsgi-shim demo: {sys.executable} is not a venv; creating {venv} on it "
          "(--system-site-packages, so it sees wsgi-shim)", file=sys.stderr)
    result = subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                             "--system-site-packages", str(venv)],
                            check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        print(f"wsgi-shim demo: creating {venv} failed (exit {result.returncode})",
              file=sys.stderr)
        return None
    # The running wsgi-shim may be importable only through sys.path tweaks (PYTHONPATH, a
    # checkout): point the demo venv at the very package this is.
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    (site_packages / "wsgi_shim_demo.pth").write_text(str(Path(__file__).parent.parent) + "\n")
    return str(venv / "bin" / "python")


def demo(dir: Path | None = None, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Create (or reuse) a demo site in DIR (default: a new temporary directory) and serve it."""
    if dir is None:
        dir = Path(tempfile.mkdtemp(prefix="wsgi-shim-demo-"))
        dir.chmod(0o755)  # as a real site directory: reachable by the web server's user
    dir = Path(dir).absolute()
    site = Site(dir)
    if site.passenger_wsgi.is_file():
        print(f"wsgi-shim demo: reusing the demo site in {dir}", file=sys.stderr)
    else:
        dir.mkdir(parents=True, exist_ok=True)
        # The demo runs with this Python and as whoever runs it (root included, on a fresh
        # machine): the demo's venv is the running environment.
        import getpass

        user = getpass.getuser()
        group = grp.getgrgid(os.getgid()).gr_name
        python = _demo_python(dir)
        if python is None:
            return 1
        code = _cli(python, "install", str(dir), "--python", python, "--app",
                    "hello.application", "--user", user, "--group", group)
        if code != 0:
            print(f"wsgi-shim demo: `wsgi-shim install {dir}` failed (exit {code})",
                  file=sys.stderr)
            return code or 1
        hello = site.approot / "hello.py"
        hello.write_text(HELLO.replace("{APPROOT}", str(site.approot)))
        hello.chmod(0o644)
        print(f"wsgi-shim demo: created a demo site in {dir} (app: {hello})", file=sys.stderr)
    if site.maint_txt.exists():
        _cli(sys.executable, "maint", "off", str(site.approot))
    return serve(site, host, port)
