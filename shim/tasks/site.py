"""Tasks for one site: install the shim, check, maintenance, restart, status, logs, preview.

Each task builds a command and hands it to ``c.run``, so it runs the same under `inv` (here,
``c`` is an invoke Context) and under `fab -H user@host` (over SSH, ``c`` is a fabric
Connection). The remote shell is non-login, so commands name the venv's ``wsgi-shim`` by its
absolute path. The work itself is done by ``wsgi-shim`` (shim/cli.py).
"""

from __future__ import annotations

import atexit
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit, UnexpectedExit

import shim

# The checkout these tasks come from, when they come from one (not from an installed wheel).
CHECKOUT = Path(__file__).resolve().parents[2]

SITE_HELP = "site directory (default: config shim.site)"
VENV_HELP = "the site's venv (default: config shim.venv, else SITE/venv)"


def q(path: str) -> str:
    """Shell-quote a path, keeping a leading ~/ expandable: the remote home is not ours."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def is_remote(c) -> bool:
    """A fabric Connection (fab -H) can copy files; a plain invoke Context cannot."""
    return hasattr(c, "put")


def where(c) -> str:
    host = getattr(c, "host", None)
    return f" on {host}" if host else ""


@dataclass(frozen=True)
class Paths:
    """The site's paths as strings for the host the command runs on (not necessarily this one)."""

    site: str
    venv: str
    approot_name: str
    docroot_name: str

    @property
    def approot(self) -> str:
        return f"{self.site.rstrip('/')}/{self.approot_name}"

    @property
    def python(self) -> str:
        return f"{self.venv}/bin/python"

    @property
    def wsgi_shim(self) -> str:
        return f"{self.venv}/bin/wsgi-shim"

    def shim(self, subcommand: str, *args: str) -> str:
        """`wsgi-shim SUBCOMMAND APPROOT ARGS`: the app root names the site unambiguously,
        whatever its approot name (wsgi-shim accepts the site directory or its app root).
        SUBCOMMAND may carry a positional word first, e.g. "maint on"."""
        return " ".join([q(self.wsgi_shim), subcommand, q(self.approot), *args])


def connect(c) -> None:
    """Over SSH, check the host's key against known_hosts, then connect.

    Fabric on its own accepts any host key; a site deploy should not. Connecting here, before
    the first command, turns an unknown or changed key, a refused login or an unreachable host
    into one clear message instead of a traceback.
    """
    if not is_remote(c) or c.is_connected:
        return
    from paramiko import AutoAddPolicy, RejectPolicy
    from paramiko.ssh_exception import AuthenticationException, BadHostKeyException, SSHException

    cfg = c.config.get("shim", {})
    policy = cfg.get("host_key_policy") or "strict"
    if policy not in ("strict", "accept-new", "off"):
        raise Exit(f"shim.host_key_policy must be strict, accept-new or off, not {policy!r}",
                   code=2)
    known = Path(cfg.get("known_hosts") or "~/.ssh/known_hosts").expanduser()
    name = c.host if c.port == 22 else f"[{c.host}]:{c.port}"
    if policy == "accept-new":
        # Like OpenSSH's StrictHostKeyChecking=accept-new: record unknown hosts, refuse changed.
        known.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        known.touch(mode=0o600, exist_ok=True)
        c.client.load_host_keys(str(known))
        c.client.set_missing_host_key_policy(AutoAddPolicy())
    elif policy == "strict":
        if known.is_file():
            c.client.load_host_keys(str(known))
        c.client.set_missing_host_key_policy(RejectPolicy())
    target = f"{c.user}@{c.host}:{c.port}"
    try:
        c.open()
    except BadHostKeyException:
        raise Exit(f"The host key of {name} is not the one recorded in {known}: refusing to "
                   f"connect. If the host really changed its key, remove the old entry "
                   f"(ssh-keygen -R '{name}' -f {known}) and connect again.", code=255) from None
    except AuthenticationException as exc:
        raise Exit(f"Could not log in as {target}: {exc}. Check the key (fab -i KEY) and the "
                   "account's ~/.ssh/authorized_keys.", code=255) from None
    except SSHException as exc:
        if "known_hosts" in str(exc):
            raise Exit(f"{name} is not in {known}, so its identity cannot be checked. Connect "
                       f"once with ssh (ssh -p {c.port} {target.rsplit(':', 1)[0]}) and compare "
                       "the fingerprint, or set shim.host_key_policy: accept-new (or "
                       "shim.known_hosts to another file).", code=255) from None
        raise Exit(f"SSH to {target} failed: {exc}", code=255) from None
    except OSError as exc:
        raise Exit(f"Cannot connect to {target}: {exc.strerror or exc}", code=255) from None


def paths(c, site: str | None = None, venv: str | None = None) -> Paths:
    """The site's paths from flags and the shim config; over SSH, also connects (see connect)."""
    cfg = c.config.get("shim", {})
    site = site or cfg.get("site") or ""
    if not site:
        raise Exit("No site given: set shim.site in invoke.yaml / fabric.yaml (or -f FILE, "
                   "or INVOKE_SHIM_SITE / FABRIC_SHIM_SITE), or pass --site DIR.", code=2)
    venv = venv or cfg.get("venv") or f"{site.rstrip('/')}/venv"
    connect(c)
    return Paths(site=site, venv=venv.rstrip("/"),
                 approot_name=cfg.get("approot") or "www-approot",
                 docroot_name=cfg.get("docroot") or "www-docroot")


def run(c, command: str, what: str, p: Paths | None = None, **kwargs):
    """c.run, but a failing command ends the task with a clear message and its exit code
    instead of invoke's traceback-like report (its output has already been shown)."""
    try:
        return c.run(command, **kwargs)
    except UnexpectedExit as exc:
        result = exc.result
        if kwargs.get("hide"):
            for text in (result.stdout, result.stderr):
                if text.strip():
                    print(text.rstrip(), file=sys.stderr)
        code = result.exited or 1
        hint = f"\n  {not_installed(p)}" if code == 127 and p is not None else ""
        raise Exit(f"{what} failed{where(c)} (exit {code}): {command}{hint}", code=code) from None


def not_installed(p: Paths) -> str:
    return (f"{p.wsgi_shim} was not found: create the venv (inv venv) and install the shim "
            "into it (inv install), or set shim.venv.")


def config_value(c, key: str, given):
    return given if given not in (None, "") else c.config.get("shim", {}).get(key)


# --- install -----------------------------------------------------------------------------


_built: dict[str, Path] = {}


def build_wheel(c, source: str) -> Path:
    """Build the shim's wheel from a local checkout, always on this machine (c.local over SSH);
    once per run, however many hosts (-H a,b) it is installed on."""
    if source in _built and _built[source].is_file():
        return _built[source]
    out = Path(tempfile.mkdtemp(prefix="wsgi-shim-wheel-"))
    atexit.register(shutil.rmtree, out, True)
    local = c.local if is_remote(c) else c.run
    cmd = (f"{q(sys.executable)} -m pip wheel --no-deps --disable-pip-version-check -q "
           f"-w {q(str(out))} {q(source)}")
    try:
        local(cmd)
    except UnexpectedExit as exc:
        raise Exit(f"building the wheel failed (exit {exc.result.exited}): {cmd}",
                   code=exc.result.exited or 1) from None
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise Exit(f"building the wheel produced no .whl in {out}", code=1)
    _built[source] = wheels[-1]
    return wheels[-1]


@task(help={
    "site": SITE_HELP,
    "venv": VENV_HELP,
    "wheel": "install this built wheel file (a local path) instead of this checkout "
             "(default: config shim.wheel)",
    "source": "local checkout directory to build the wheel from, or a pip requirement "
              "(default: config shim.source, else this checkout, else wsgi-shim==<version>)",
    "user": "passenger_user for a new site (wsgi-shim install --user)",
    "group": "passenger_group for a new site (wsgi-shim install --group)",
    "app": "the site's WSGI app as module.attr for a new site (wsgi-shim install --app)",
})
def install(c, site=None, venv=None, wheel=None, source=None, user=None, group=None, app=None):
    """Install wsgi-shim into the site's venv, then create the site if it does not exist yet.

    The venv must exist already (inv venv). What is installed: --wheel, else a wheel built here
    from --source or this checkout, else wsgi-shim==<this version> from the package index. Under
    `fab -H host` the wheel is built on this machine, copied to a temporary directory on the host
    and installed there. When the app root does not exist, `wsgi-shim install` creates the site
    (passenger_wsgi.py, config.toml with passenger_python = the venv's python, tmp/, docroot).
    """
    p = paths(c, site, venv)
    wheel = config_value(c, "wheel", wheel)
    source = config_value(c, "source", source)
    if not wheel:
        if not source and (CHECKOUT / "pyproject.toml").is_file():
            source = str(CHECKOUT)
        if source and Path(source).expanduser().is_dir():
            wheel = str(build_wheel(c, str(Path(source).expanduser())))
    target = wheel or source or f"wsgi-shim=={shim.__version__}"

    if not c.run(f"test -x {q(p.python)}", warn=True, hide=True).ok:
        raise Exit(f"No venv at {p.venv}{where(c)}: create it first (inv venv), "
                   "or set shim.venv.", code=1)

    remote_tmp = None
    if wheel and is_remote(c):
        if not Path(wheel).is_file():
            raise Exit(f"No such wheel file here: {wheel}", code=1)
        remote_tmp = run(c, "mktemp -d", "making a temporary directory", hide=True).stdout.strip()
        remote_wheel = f"{remote_tmp}/{Path(wheel).name}"
        print(f"copying {Path(wheel).name} to {c.host}:{remote_tmp}")
        c.put(wheel, remote_wheel)
        target = remote_wheel
    elif wheel:
        target = str(Path(wheel).expanduser())
    try:
        pip = f"{q(p.python)} -m pip install --disable-pip-version-check -q"
        # --force-reinstall --no-deps: pip skips a wheel whose version is already installed,
        # which would silently keep the old code; the second call brings in missing deps.
        quoted = q(target) if (wheel or Path(target).exists()) else shlex.quote(target)
        run(c, f"{pip} --force-reinstall --no-deps {quoted} && {pip} {quoted}",
            "installing wsgi-shim into the venv")
    finally:
        if remote_tmp:
            c.run(f"rm -rf {q(remote_tmp)}", warn=True, hide=True)
    print(f"installed {Path(target).name if wheel else target} into {p.venv}{where(c)}")

    if c.run(f"test -e {q(p.approot)}", warn=True, hide=True).ok:
        print(f"{p.approot} exists; left as it is (inv check tells whether it is healthy)")
        return
    args = ["-a", q(p.approot_name), "-d", q(p.docroot_name), "--python", q(p.python)]
    for flag, value in (("--user", config_value(c, "user", user)),
                        ("--group", config_value(c, "group", group)),
                        ("--app", config_value(c, "app", app))):
        if value:
            args += [flag, shlex.quote(str(value))]
    run(c, " ".join([q(p.wsgi_shim), "install", q(p.site), *args]), "creating the site", p=p)


# --- site operations ---------------------------------------------------------------------


@task(help={"site": SITE_HELP, "venv": VENV_HELP, "json": "print the problems as JSON"})
def check(c, site=None, venv=None, json=False):
    """Check the site the way its next process start will; list every problem with its fix.

    Exits 0 only when the site would serve its app.
    """
    p = paths(c, site, venv)
    result = c.run(p.shim("check", *(["--json"] if json else [])), warn=True)
    if result.exited == 127:
        raise Exit(f"wsgi-shim check failed{where(c)}: {not_installed(p)}", code=127)
    if not result.ok:
        raise Exit(f"the site{where(c)} has problems (listed above)" if result.exited == 1
                   else f"wsgi-shim check failed{where(c)} (exit {result.exited})",
                   code=result.exited or 1)


@task(positional=["action"], help={
    "action": "on (show the maintenance page), off, or status",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def maint(c, action, site=None, venv=None):
    """Maintenance mode: `maint on`, `maint off` or `maint status`.

    On creates tmp/maint.txt, off removes it; either touches tmp/restart.txt so the app process
    restarts and the change shows on the next request (follow with `inv restart --wait` to be
    sure it has).
    """
    if action not in ("on", "off", "status"):
        raise Exit(f"maint: expected on, off or status, not {action!r}", code=2)
    p = paths(c, site, venv)
    run(c, p.shim(f"maint {action}"), f"maint {action}", p=p)


@task(optional=["wait"], help={
    "wait": "wait until the new process has started (a new start record); optional SECONDS "
            "(default: config shim.restart_wait); needs a URL to send the request that starts it",
    "url": "the site's public URL (default: config shim.url)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def restart(c, wait=None, url=None, site=None, venv=None):
    """Restart the app (touch tmp/restart.txt); with --wait, return once the new process runs.

    With --wait and a URL, requests the URL until a new process start is recorded, then reports
    whether it serves the app, the maintenance page or an error page (exit 1 on error or timeout).
    """
    p = paths(c, site, venv)
    run(c, p.shim("restart", *wait_args(c, wait, url, "restart", url_without_wait=True)), "restart", p=p)


def wait_args(c, wait, url, name: str, url_without_wait: bool = False) -> list[str]:
    """`--wait SECONDS --url URL` for wsgi-shim from a task's --wait[=S] and --url/shim.url."""
    args: list[str] = []
    if wait:
        seconds = c.config.get("shim", {}).get("restart_wait", 30) if wait is True else wait
        try:
            seconds = float(seconds)
        except ValueError:
            raise Exit(f"{name}: --wait takes seconds, not {wait!r}", code=2) from None
        args = ["--wait", f"{seconds:g}"]
    url = config_value(c, "url", url)
    if url and (wait or url_without_wait):
        args += ["--url", shlex.quote(url)]
    return args


@task(help={
    "url": "also ask the site over HTTP (default: config shim.url)",
    "json": "print the status as JSON",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def status(c, url=None, json=False, site=None, venv=None):
    """Is the site serving its app, the maintenance page or an error page?

    From the last process start record and a check of the site; with a URL, over HTTP as well.
    Exits 0 when it serves the app or the maintenance page, 1 on an error page.
    """
    p = paths(c, site, venv)
    args: list[str] = []
    url = config_value(c, "url", url)
    if url:
        args += ["--url", shlex.quote(url)]
    if json:
        args.append("--json")
    result = c.run(p.shim("status", *args), warn=True)
    if result.exited == 127:
        raise Exit(f"wsgi-shim status failed{where(c)}: {not_installed(p)}", code=127)
    if result.exited == 1:
        raise Exit(f"the site{where(c)} is not serving its app or the maintenance page "
                   "(see above)", code=1)
    if not result.ok:
        raise Exit(f"wsgi-shim status failed{where(c)} (exit {result.exited})",
                   code=result.exited or 1)


@task(help={
    "follow": "keep printing new lines as they are written (Ctrl-C to stop)",
    "errors": "only errors and tracebacks",
    "since": "only entries since SPEC (e.g. 10m, 2h, 1d, or an ISO time)",
    "lines": "show the last N entries (wsgi-shim logs -n)",
    "id": "show the entry of this error id (printed on the 500 page)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def logs(c, follow=False, errors=False, since=None, lines=None, id=None, site=None, venv=None):
    """Show the site's app log (output, warnings, logging and tracebacks) and process starts."""
    p = paths(c, site, venv)
    args: list[str] = []
    if follow:
        args.append("--follow")
    if errors:
        args.append("--errors")
    if since:
        args += ["--since", shlex.quote(str(since))]
    if lines:
        args += ["-n", str(int(lines))]
    if id:
        args += ["--id", shlex.quote(str(id))]
    # Over SSH a pty makes Ctrl-C end the remote `--follow` too, not just our side.
    run(c, p.shim("logs", *args), "logs", p=p, pty=bool(follow and is_remote(c)))


# --- preview -------------------------------------------------------------------------------


@task(help={
    "host": "address to listen on (default: config shim.host, 127.0.0.1)",
    "port": "port to listen on (default: config shim.port, 8000)",
    "site": SITE_HELP,
    "venv": VENV_HELP,
})
def serve(c, host=None, port=None, site=None, venv=None):
    """Preview the site without Apache: its passenger_wsgi.py, loaded as Passenger loads it.

    Runs the app with the site's passenger_python on waitress, restarts it when tmp/restart.txt
    is touched and shows the maintenance page while tmp/maint.txt exists. Ctrl-C stops it.
    Under `fab -H host` it runs on the host; reach it with ssh -L PORT:127.0.0.1:PORT host.
    """
    p = paths(c, site, venv)
    host = config_value(c, "host", host) or "127.0.0.1"
    port = config_value(c, "port", port) or 8000
    run(c, p.shim("serve", "--host", shlex.quote(str(host)), "--port", str(int(port))),
        "serve", p=p, pty=is_remote(c))


def local_wsgi_shim() -> str:
    """The wsgi-shim command of the Python running these tasks (the demo needs no site venv)."""
    script = Path(sys.executable).parent / "wsgi-shim"
    if script.is_file():
        return q(str(script))
    found = shutil.which("wsgi-shim")
    if found:
        return q(found)
    return f"{q(sys.executable)} -m shim.cli"


@task(help={
    "dir": "where to create the demo site (default: a new temporary directory)",
    "host": "address to listen on (default: config shim.host, 127.0.0.1)",
    "port": "port to listen on (default: config shim.port, 8000)",
})
def demo(c, dir=None, host=None, port=None):
    """Create a throwaway demo site and preview it: the quickest way to see the shim work.

    Always runs on this machine, with the Python running these tasks.
    """
    host = config_value(c, "host", host) or "127.0.0.1"
    port = config_value(c, "port", port) or 8000
    args = [local_wsgi_shim(), "demo"]
    if dir:
        args.append(q(str(dir)))
    args += ["--host", shlex.quote(str(host)), "--port", str(int(port))]
    local = c.local if is_remote(c) else c.run
    try:
        local(" ".join(args))
    except UnexpectedExit as exc:
        raise Exit(f"demo failed (exit {exc.result.exited})", code=exc.result.exited or 1) \
            from None
