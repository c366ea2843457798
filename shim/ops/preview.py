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
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shim.ops import signals
from shim.runtime import advice
from shim.runtime.checks import PREVIEW_FIX_ENV
from shim.runtime.layout import Site

POLL_SECONDS = 0.25
STOP_SECONDS = 5.0
LOADER = Path(__file__).with_name("passenger_loader.py")

# Runs in the app process, under the site's Python: standard library + waitress only. The app is
# loaded by wsgi-shim's one emulation of Passenger's loader (passenger_loader.py, by path). Each
# request gets one line on the terminal (method, path, status, time), and a traceback that
# escapes the app is printed there too, as `flask run` does: through a copy of stderr made before
# the shim sends the process's own stderr to the app log.
CHILD = r"""
import importlib.util, os, socket, sys, time, traceback, urllib.parse
mode, fd, loader_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
terminal = os.fdopen(os.dup(2), "w", buffering=1, errors="backslashreplace")
spec = importlib.util.spec_from_file_location("_wsgi_shim_passenger_loader", loader_path)
loader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loader)
loader.drop_script_dir()
try:
    import waitress
except ImportError:
    # The site's venv lacks waitress (an older shim): borrow the supervisor's copy.
    sys.path.append(os.environ["WSGI_SHIM_PREVIEW_WAITRESS"])
    import waitress
sock = socket.socket(fileno=fd)
def orphaned(parent=int(os.environ.get("WSGI_SHIM_PREVIEW_PARENT") or 0)):
    # Under sg the supervisor is not our parent: end with it, even if it was killed outright.
    while parent:
        time.sleep(1)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except OSError:
            pass
import threading
threading.Thread(target=orphaned, daemon=True).start()
# The gate: on a shared machine every user can reach 127.0.0.1:PORT, so nobody is trusted by
# address. The owner's browser opens the URL printed in the terminal (?wsgi-shim-preview=TOKEN),
# which sets an HttpOnly, SameSite=Strict cookie; a request without it gets a plain 403.
import hmac
token = os.environ.pop("WSGI_SHIM_PREVIEW_TOKEN", "").encode()
cookie_name = "wsgi_shim_preview_%d" % sock.getsockname()[1]  # cookies ignore the port
PARAM = "wsgi-shim-preview"
LOCKED = (b"<!DOCTYPE html><meta charset=utf-8><title>Private preview</title><h1>Private preview</h1>"
          b"<p>This is the private preview of a site. Open the address that <code>wsgi-shim serve</code>"
          b" (or <code>wsgi-shim demo</code>) printed in its terminal: it carries a token that lets"
          b" your browser in.</p>")
if mode == "app":
    app = loader.start(os.getcwd()).application
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

def shown(environ):
    # A visitor's path may hold escape sequences: percent-encode all but plain characters.
    safe = "/:@!$&'()*+,;=-._~%"
    path = urllib.parse.quote(environ.get("PATH_INFO", "").encode("latin-1", "replace"), safe=safe)
    query = environ.get("QUERY_STRING", "")
    if PARAM in query:
        query = urllib.parse.urlencode([(k, "[token]" if k == PARAM else v) for k, v in
                                        urllib.parse.parse_qsl(query, keep_blank_values=True)])
    if query:
        path += "?" + urllib.parse.quote(query.encode("latin-1", "replace"), safe=safe + "?")
    return urllib.parse.quote(environ.get("REQUEST_METHOD", "?"), safe="") + " " + path

class Logged:
    def __init__(self, body, line):
        self.body, self.line, self.failed = body, line, False
    def __iter__(self):
        try:
            yield from self.body
        except BaseException:
            self.failed = True
            terminal.write(traceback.format_exc())
            raise
    def close(self):
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.line(self.failed)

def talking(environ, start_response):
    started, seen = time.monotonic(), {}
    def line(failed):
        status = "500 (the app raised an exception)" if failed else seen.get("status", "-")
        ms = (time.monotonic() - started) * 1000
        terminal.write("[wsgi-shim serve] %s -> %s (%.1f ms)\n" % (shown(environ), status, ms))
    def remember(status, headers, exc_info=None):
        seen["status"] = status.split(" ", 1)[0]
        return start_response(status, headers, exc_info)
    try:
        return Logged(app(environ, remember), line)
    except BaseException:
        terminal.write(traceback.format_exc())
        line(True)
        raise
def cookies(environ):
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, _, value = part.strip().partition("=")
        yield name, value

def gate(environ, start_response):
    query = environ.get("QUERY_STRING", "")
    if PARAM in query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        given = [v for k, v in pairs if k == PARAM]
        if given and hmac.compare_digest(given[-1].encode("utf-8", "replace"), token):
            rest = urllib.parse.urlencode([(k, v) for k, v in pairs if k != PARAM])
            path = urllib.parse.quote((environ.get("PATH_INFO", "") or "/").encode("latin-1", "replace"), safe="/")
            start_response("303 See Other", [
                ("Location", path + ("?" + rest if rest else "")), ("Cache-Control", "no-store"),
                ("Set-Cookie", "%s=%s; Path=/; HttpOnly; SameSite=Strict" % (cookie_name, token.decode())),
                ("Content-Length", "0")])
            return [b""]
    sent = [v for k, v in cookies(environ) if k == cookie_name]
    if token and sent and hmac.compare_digest(sent[-1].encode("utf-8", "replace"), token):
        # The owner: the app never sees the preview's cookie; the start-up page shows the details.
        rest = "; ".join("%s=%s" % kv for kv in cookies(environ) if kv[0] and kv[0] != cookie_name)
        if rest:
            environ["HTTP_COOKIE"] = rest
        else:
            environ.pop("HTTP_COOKIE", None)
        environ["wsgi_shim.preview_owner"] = True
        return talking(environ, start_response)
    terminal.write("[wsgi-shim serve] %s -> 403 (no preview cookie: open the URL printed above)\n" % shown(environ))
    start_response("403 Forbidden", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                                     ("Content-Length", str(len(LOCKED))), ("X-Wsgi-Shim", "preview-locked")])
    return [LOCKED]

waitress.serve(gate, sockets=[sock], ident="wsgi-shim preview", _quiet=True)
"""

Report = Callable[[str, str], None]  # (kind, text); kind: start, restart, warning, error, stop


class PreviewError(Exception):
    """A message for the user: the preview cannot start."""


def _python_for(cfg, report: Report) -> str:
    python = cfg.passenger_python if cfg is not None else ""
    if python and os.access(python, os.X_OK):
        return python
    report("warning", f"WARNING: passenger_python {python or None!r} is not an executable file; "
                      f"running the app with {sys.executable} instead (Passenger could not start it)")
    return sys.executable


def _identity(cfg, report: Report) -> dict:
    """As root, run the app as passenger_user/passenger_group, as Passenger does."""
    if os.geteuid() != 0 or cfg is None:
        return {}
    user = cfg.passenger_user
    if not user or user == "root":
        return {}
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        report("warning", f"WARNING: passenger_user {user!r} does not exist; running the app as root")
        return {}
    group = cfg.passenger_group
    try:
        gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    except KeyError:
        report("warning", f"WARNING: passenger_group {group!r} does not exist; using {user}'s primary group")
        gid = pw.pw_gid
    return {"user": pw.pw_uid, "group": gid, "extra_groups": os.getgrouplist(user, gid),
            "home": pw.pw_dir, "name": user}


def _switch_group(cfg, site: Site, report: Report) -> tuple[list[str], str]:
    """Not root: how to run the app with the site's passenger_group, as Passenger does.

    Returns (argv prefix, ""): through `sg GROUP -c` (setuid root; it lets a member of GROUP
    switch to it, which a plain process cannot: only root may set its group id). Or ([], fix)
    when the preview cannot take the site's user or group: the app's page then calls it the
    preview's limit, with FIX, never a reason to change config.toml. ([], "") when nothing differs.
    """
    if os.geteuid() == 0 or cfg is None:
        return [], ""
    me = pwd.getpwuid(os.getuid())
    user, group = cfg.passenger_user, cfg.passenger_group
    if user and user != me.pw_name:
        return [], (f"Keep passenger_user = \"{user}\": Passenger runs the site as {user}. Only root can "
                    f"preview it as {user} (sudo {advice.command('serve', site.site)}), or run the preview as {user}.")
    try:
        gr = grp.getgrnam(group) if group else None
    except KeyError:
        return [], ""  # the app's page names the missing group (group-missing)
    if gr is None or gr.gr_gid == os.getegid():
        return [], ""
    sg = shutil.which("sg") or ("/usr/bin/sg" if os.access("/usr/bin/sg", os.X_OK) else None)
    if (me.pw_name in gr.gr_mem or me.pw_gid == gr.gr_gid) and sg:
        return [sg, group, "-c"], ""
    why = (f"you ({me.pw_name}) are not a member of the group {group}" if sg
           else "this machine has no `sg` command (Debian: the passwd package)")
    report("warning", f"WARNING: the preview cannot run the app as passenger_group {group!r}: {why}; "
                      "its page says so (Passenger runs the site as that group: keep config.toml as it is)")
    return [], (f"Keep passenger_group = \"{group}\": Passenger runs the site as {group}. The preview cannot, "
                f"because {why}: ask the sysadmins to add you to {group} (then log in again), or preview as "
                f"root (sudo {advice.command('serve', site.site)}).")


def _mtime(path: Path) -> int | None:
    """Whole seconds, as Passenger compares it: a second touch within the same second is
    ignored there, so it is here (`wsgi-shim restart` always moves it a whole second on)."""
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return None


def listen(host: str, port: int) -> socket.socket:
    """The preview's listening socket. Raises PreviewError (a busy port, an unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, OverflowError, UnicodeError) as exc:
        raise PreviewError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4][:2] if family == socket.AF_INET else infos[0][4])
        sock.listen(128)
    except (OSError, OverflowError) as exc:
        sock.close()
        raise PreviewError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    return f"http://{shown}:{bound[1]}/"


TOKEN_PARAM = "wsgi-shim-preview"


def new_token() -> str:
    """The preview's secret for this run: only who sees the terminal gets in."""
    import secrets

    return secrets.token_urlsafe(24)


def owner_url(sock: socket.socket, token: str) -> str:
    """The URL to open: it sets the preview's cookie (HttpOnly, SameSite=Strict) and redirects."""
    return f"{url_of(sock)}?{TOKEN_PARAM}={token}"


class Supervisor:
    """One app process at a time on a socket this process keeps open."""

    def __init__(self, site: Site, sock: socket.socket, report: Report, token: str) -> None:
        self.site = site
        self.sock = sock
        self.report = report
        self.token = token  # to the app process in its environment: never on a command line (ps)
        self.child: subprocess.Popen | None = None
        self.failed = False
        self.spare: str | None = None
        self.group_leader = False  # the app runs under sg, in a process group of its own

    def start(self) -> None:
        from shim.runtime.config import load_config

        cfg, _ = load_config(self.site.approot)  # its problems are the app's error page's to show
        python = _python_for(cfg, self.report)
        who = _identity(cfg, self.report)
        sg, limit = _switch_group(cfg, self.site, self.report)
        env = dict(os.environ, PYTHONUNBUFFERED="1", WSGI_SHIM_PREVIEW="1", WSGI_SHIM_PREVIEW_TOKEN=self.token,
                   WSGI_SHIM_PREVIEW_WAITRESS=self.spare_waitress(), WSGI_SHIM_PREVIEW_PARENT=str(os.getpid()))
        env.pop(PREVIEW_FIX_ENV, None)
        if limit:
            env[PREVIEW_FIX_ENV] = limit
        # Passenger does not get the developer's PYTHONPATH; an app that only imports with it
        # would fail there, so it should fail here too.
        for name in ("PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        kwargs: dict = {}
        if who:
            env.update(HOME=who["home"], USER=who["name"], LOGNAME=who["name"])
            kwargs = {"user": who["user"], "group": who["group"], "extra_groups": who["extra_groups"]}
        argv = [python, "-c", CHILD, "app", str(self.sock.fileno()), str(LOADER)]
        if sg:
            # sg stays as the parent and does not pass signals on: stop() signals the group.
            # In a process group of its own it must not read the terminal (that would stop it).
            argv, kwargs = [*sg, "exec " + shlex.join(argv)], {"process_group": 0, "stdin": subprocess.DEVNULL}
        try:
            self.child = subprocess.Popen(argv, cwd=self.site.approot, env=env, pass_fds=(self.sock.fileno(),),
                                          **kwargs)
        except OSError as exc:
            # e.g. passenger_python not executable by passenger_user: Passenger fails too.
            self.report("error", f"cannot start the app process with {python}: {exc}; serving an error page "
                                 "until tmp/restart.txt changes")
            self.start_error_page()
            return
        self.failed = False
        self.group_leader = bool(sg)
        as_user = f" as {who['name']}" if who else (f" with group {cfg.passenger_group} (through sg)" if sg else "")
        self.report("start", f"app process {self.child.pid} started{as_user}: {python} loading "
                             f"{self.site.passenger_wsgi}")

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
        self.group_leader = False
        env = dict(os.environ, WSGI_SHIM_PREVIEW_WAITRESS=self.spare_waitress(), WSGI_SHIM_PREVIEW_TOKEN=self.token)
        self.child = subprocess.Popen([sys.executable, "-c", CHILD, "error", str(self.sock.fileno()), str(LOADER)],
                                      pass_fds=(self.sock.fileno(),), env=env)
        self.failed = True

    def stop(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        self._signal(child, signal.SIGTERM)
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._signal(child, signal.SIGKILL)
            child.wait()

    def _signal(self, child: subprocess.Popen, signum: int) -> None:
        try:
            if self.group_leader:
                os.killpg(child.pid, signum)
            else:
                child.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        self.stop()
        self.sock.close()
        if self.spare:
            shutil.rmtree(self.spare, ignore_errors=True)


def check_site(site: Site) -> None:
    """Raises PreviewError unless SITE has a startup file to load."""
    if not site.passenger_wsgi.is_file():
        raise PreviewError(f"no {site.passenger_wsgi}: not a site (create one with: "
                           f"{advice.command('install', site.site)})")


@contextmanager
def stop_on_signals():
    """SIGTERM and SIGHUP (a closed terminal) stop the preview as Ctrl-C does, so that its
    `finally` blocks run: the app process is stopped and a demo's temporary site removed."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with signals.handled(signals.TERMINATING, interrupt):
        yield


def serve(site: Site, sock: socket.socket, report: Report, token: str | None = None) -> None:
    """Serve SITE on SOCK (see listen()) until interrupted, restarting the app when
    tmp/restart.txt changes, printing the app log's errors (tracebacks of failed requests and
    starts) as they are written. Only requests that came through the owner's URL (TOKEN, see
    owner_url()) reach the app. Returns on Ctrl-C, SIGTERM or SIGHUP; closes SOCK."""
    check_site(site)
    token = token or new_token()
    sup = Supervisor(site, sock, report, token)
    errors = _ErrorEcho(site, report)
    try:
        with stop_on_signals():
            sup.start()
            report("serving", f"serving {site.approot}; open {owner_url(sock, token)}  (Ctrl-C stops; "
                              "the token in it lets only you in)")
            errors.start()
            _watch(site, sup, report)
    except KeyboardInterrupt:
        report("stop", "stopping")
    finally:
        errors.stop()
        sup.close()


def _watch(site: Site, sup: Supervisor, report: Report) -> None:
    seen = _mtime(site.restart_txt)
    while True:
        time.sleep(POLL_SECONDS)
        now = _mtime(site.restart_txt)
        # As Passenger: a changed mtime restarts, a deleted file triggers nothing.
        if now is not None and now != seen:
            seen = now
            report("restart", f"{site.restart_txt} changed: restarting the app process")
            sup.stop()
            sup.start()
            continue
        child = sup.child
        if child is not None and child.poll() is not None and not sup.failed:
            report("error", f"app process {child.pid} exited with code {child.returncode} (output above); "
                            "serving an error page until tmp/restart.txt changes")
            sup.start_error_page()


class _ErrorEcho:
    """Follows the site's app log in a thread and reports its error entries (a failed request's
    traceback, a failed start), as `flask run` shows them in the terminal."""

    def __init__(self, site: Site, report: Report) -> None:
        from shim.ops.control import site_logging

        self.path = site_logging(site).path
        self.report = report
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()

    def _run(self) -> None:
        from shim.ops import logview

        report = self.report

        class Out:
            def write(self, text: str) -> None:
                if text.strip():
                    report("app-error", text.rstrip("\n"))

            def flush(self) -> None:
                pass

        try:
            logview.follow(self.path, True, Out(), stop=self.done)
        except OSError as exc:  # e.g. the log belongs to the site's user and we are not
            report("warning", f"cannot follow the app log {self.path} ({exc.strerror or exc}); "
                              "request errors will not show here")


# --- demo ------------------------------------------------------------------------------------

HELLO = '''"""The demo site's app: a plain WSGI callable (config.toml: [wsgi] app = "hello.application")."""

import os
import sys
import time

STARTED = time.strftime("%H:%M:%S")
TRY = {TRY!r}


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/fail":
        raise RuntimeError("a failing request, on purpose: see its traceback in the terminal")
    try_html = "\\n".join(TRY).replace("&", "&amp;").replace("<", "&lt;")
    body = f"""<!DOCTYPE html>
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsgi-shim demo</title>
<h1>Hello from the wsgi-shim demo</h1>
<p>This page comes from <code>hello.py</code>, loaded through <code>passenger_wsgi.py</code>
exactly as Passenger loads it. App process {os.getpid()} started at {STARTED},
Python {sys.version.split()[0]}.</p>
<p>Try <a href="/fail">/fail</a> (a request that fails), and in another terminal:</p>
<pre style="overflow-x:auto">
{try_html}
</pre>
""".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


@dataclass
class Demo:
    """A demo site ready to serve: where it is, the command that manages it (as it can be run
    from a new shell) and what to try."""

    site: Site
    command: str
    temporary: bool
    reused: bool = False

    def try_lines(self) -> list[str]:
        approot, cmd = shlex.quote(str(self.site.approot)), self.command
        hello = shlex.quote(str(self.site.approot / "hello.py"))
        return [f"{cmd} maint on {approot}      # then reload: the maintenance page",
                f"{cmd} maint off {approot}",
                f"{cmd} check {approot}",
                f"echo 'oops =' >> {hello}; {cmd} restart {approot}   # a readable error page",
                f"{cmd} logs {approot}"]


def _command(python: str) -> str:
    """How to run this wsgi-shim from a new shell: the venv's script by its full path (a new
    shell has no venv on PATH), else its Python with -m shim.cli."""
    script = Path(python).parent / "wsgi-shim"
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(python)} -m shim.cli"


def _demo_python(dir: Path) -> str:
    """The running venv's python; outside a venv, a venv in DIR that sees this Python's packages
    (the shim runs sites only from a venv, and this Python has wsgi-shim and waitress)."""
    if sys.prefix != sys.base_prefix:
        return sys.executable
    venv = dir / "venv"
    result = subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                            check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise PreviewError(f"creating a venv in {venv} failed: {result.stderr.strip()[-500:]}")
    # The running wsgi-shim may be importable only through sys.path tweaks (PYTHONPATH, a
    # checkout): point the demo venv at the very package this is.
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    (site_packages / "wsgi_shim_demo.pth").write_text(str(Path(__file__).parents[2]) + "\n")
    return str(venv / "bin" / "python")


def make_demo(dir: Path | None) -> Demo:
    """Create (or reuse) a demo site in DIR (default: a new temporary directory), maintenance
    off. Raises PreviewError; a temporary directory is removed again on failure."""
    temporary = dir is None
    dir = Path(tempfile.mkdtemp(prefix="wsgi-shim-demo-")) if dir is None else Path(os.path.abspath(dir))
    try:
        return _fill_demo(dir, temporary)
    except BaseException:
        if temporary:
            shutil.rmtree(dir, ignore_errors=True)
        raise


def _fill_demo(dir: Path, temporary: bool) -> Demo:
    from shim.ops import control
    from shim.ops.install import InstallError, install

    site = Site(dir)
    if site.passenger_wsgi.is_file():
        python = _demo_python_of(site)
        control.maint_off(site.maint_txt)
        return Demo(site, _command(python), temporary, reused=True)
    try:
        dir.mkdir(parents=True, exist_ok=True)
        dir.chmod(0o755)  # as a real site directory: reachable by the web server's user
        python = _demo_python(dir)
        # The demo runs as whoever runs it (root included, on a fresh machine).
        install(site, pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name, python,
                "hello.application")
        demo = Demo(site, _command(python), temporary)
        hello = site.approot / "hello.py"
        hello.write_text(HELLO.replace("{TRY!r}", repr(demo.try_lines())))
        hello.chmod(0o644)
        control.maint_off(site.maint_txt)
    except InstallError as exc:
        raise PreviewError(str(exc)) from None
    except OSError as exc:
        raise PreviewError(f"cannot create the demo site in {dir}: {exc.strerror or exc}") from None
    return demo


def _demo_python_of(site: Site) -> str:
    from shim.runtime.config import load_config

    cfg, _ = load_config(site.approot)
    return cfg.passenger_python if cfg is not None and cfg.passenger_python else sys.executable


def remove_demo(demo: Demo) -> None:
    shutil.rmtree(demo.site.site, ignore_errors=True)
