"""The one way a task reaches a site, here (`inv`, ``c`` is an invoke Context) or over SSH
(`fab -H user@host`, ``c`` is a fabric Connection): the site's paths, the connection with the
host-key policy, running a command with a clear message on failure, and quoting.

Commands run in the remote user's non-login shell, so they name programs by absolute path (the
venv's ``bin/wsgi-shim``), and paths are quoted for *that* host: a leading ``~/`` stays
expandable there.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from invoke.exceptions import Exit, UnexpectedExit

from shim.tasks.config import setting


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


def local(c):
    """The run function for this machine: c.local over SSH, c.run otherwise."""
    return c.local if is_remote(c) else c.run


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


NO_SITE = ("No site given: set shim.site in invoke.yaml / fabric.yaml (or -f FILE, or "
           "INVOKE_SHIM_SITE / FABRIC_SHIM_SITE), or pass --site DIR.")


def site_dir(c, site: str | None = None) -> str:
    """The site directory from --site or shim.site; a usage error when neither is set."""
    site = str(setting(c, "site", site))
    if not site:
        raise Exit(NO_SITE, code=2)
    return site


def site_paths(c, site: str | None = None, venv: str | None = None) -> Paths:
    """The site's paths from flags and the shim config (nothing is checked on the host)."""
    site = site_dir(c, site)
    venv = str(setting(c, "venv", venv) or f"{site.rstrip('/')}/venv")
    return Paths(site=site, venv=venv.rstrip("/") or "/",
                 approot_name=str(setting(c, "approot")), docroot_name=str(setting(c, "docroot")))


def paths(c, site: str | None = None, venv: str | None = None) -> Paths:
    """site_paths, for a task that runs the venv's wsgi-shim: a missing one ends the task with
    how to install it, before any command's own error reaches the terminal."""
    p = site_paths(c, site, venv)
    connect(c)
    gone = missing_site(c, p)
    if gone:
        raise Exit(gone, code=2)
    if not c.run(f"test -x {q(p.wsgi_shim)}", warn=True, hide=True, in_stream=False).ok:
        raise Exit(f"{p.wsgi_shim} was not found{where(c)}: {not_installed(p, runner(c))}", code=127)
    return p


def not_installed(p: Paths, tool: str = "inv") -> str:
    return (f"create the venv ({tool} venv) and install the shim into it ({tool} install), or set "
            f"shim.venv to the venv that has it (now {p.venv}).")


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
        hint = f"\n  {p.wsgi_shim} was not found: {not_installed(p, runner(c))}" if code == 127 and p else ""
        raise Exit(f"{what} failed{where(c)} (exit {code}): {command}{hint}", code=code) from None


def run_script(c, script: str) -> None:
    """Run a generated sh script (build-python, venv) with `sh -c`; a failure ends the task with
    the script's exit code (the script has already said what went wrong and what to do)."""
    result = c.run("sh -c " + shlex.quote(script), in_stream=False, warn=True)
    if result is not None and result.exited:
        raise Exit(code=result.exited)


def under_fab(c) -> bool:
    """Run by `fab` (a Fabric config), with or without -H."""
    return type(c.config).__module__.startswith("fabric")


def runner(c) -> str:
    """How the user runs these tasks here: `inv`, or `fab -H user@host[:port]` over SSH."""
    if not is_remote(c):
        return "fab" if under_fab(c) else "inv"
    port = f":{c.port}" if c.port != 22 else ""
    return f"fab -H {c.user}@{c.original_host}{port}"


def set_advice(c, site: str | None, venv: str | None) -> None:
    """Make the advice wsgi-shim prints name this task's form (`inv deploy --init`, `fab -H host
    rollback`) instead of its own command line (shim/runtime/advice.py reads these variables)."""
    from shim.runtime.advice import ADVICE_ENV, ADVICE_SITE_ENV

    flags = " ".join(f"--{name} {shlex.quote(str(value))}" for name, value in (("site", site), ("venv", venv))
                     if value)
    env = {ADVICE_ENV: runner(c), ADVICE_SITE_ENV: flags}
    if is_remote(c):  # Fabric writes them into `export K=V && command` unquoted
        env = {key: shlex.quote(value) for key, value in env.items()}
    c.config.run.env = {**(c.config.run.env or {}), **env}


# --- SSH: the host key is checked before the first command ----------------------------------


def connect(c) -> None:
    """Over SSH, check the host's key against known_hosts, then connect; here, nothing.

    Fabric on its own accepts any host key; a site deploy should not. Connecting here, before
    the first command, turns an unknown or changed key, a refused login or an unreachable host
    into one clear message instead of a traceback. Every task calls this first (see
    shim.tasks.flags.shim_task), so no task can reach a host whose key was not checked.
    """
    if not is_remote(c):
        say_local(c)
        return
    if c.is_connected:
        return
    known = Path(str(setting(c, "known_hosts") or "~/.ssh/known_hosts")).expanduser()
    _set_host_key_policy(c, str(setting(c, "host_key_policy")), known)
    try:
        c.open()
    except Exception as exc:  # paramiko's and the socket's: each becomes one clear line
        raise Exit(connect_failure(c, exc, known), code=255) from None


_said_local = False


def say_local(c) -> None:
    """`fab TASK` without -H runs here, not on a host: say so, once, before anything it advises."""
    global _said_local
    if under_fab(c) and not _said_local:
        _said_local = True
        print(f"fab without -H: running on this machine ({socket.gethostname()}), not on a host. For the host: "
              "fab -H USER@HOST TASK.", file=sys.stderr, flush=True)


def local_path_hint(c, path: str) -> str:
    """Over SSH, PATH (missing on the host) that looks like this machine's: the local shell
    expanded ~ (or the user gave a local path). Empty when it does not look so."""
    home = os.path.expanduser("~").rstrip("/")
    if not is_remote(c) or not home or not (path == home or path.startswith(home + "/")):
        return ""
    rest = path[len(home):].lstrip("/")
    host_path = f"~/{rest}" if rest else "~"
    return (f" {path} is a path in your home directory on this machine ({home}): your shell expanded ~ here "
            f"before fab saw it. For the home directory on the host, quote it: --site '{host_path}' "
            f"(or shim.site: '{host_path}' in fabric.yaml).")


def missing_site(c, p: Paths) -> str:
    """Over SSH, a site path of this machine's home that the host lacks (the local shell expanded
    ~): said before anything else. Any other missing site is wsgi-shim's to report."""
    hint = local_path_hint(c, p.site)
    if not hint or c.run(f"test -d {q(p.site)}", warn=True, hide=True, in_stream=False).ok:
        return ""
    return f"{p.site} does not exist{where(c)}." + hint


def _set_host_key_policy(c, policy: str, known: Path) -> None:
    from paramiko import AutoAddPolicy, RejectPolicy

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


def user_source(c) -> str:
    """Where the SSH user name came from: -H user@host, ~/.ssh/config, or this machine's login."""
    import getpass

    for i, word in enumerate(sys.argv):
        value = sys.argv[i + 1] if word in ("-H", "--hosts") and i + 1 < len(sys.argv) else \
            word.split("=", 1)[1] if word.startswith("--hosts=") else ""
        if any("@" in h and h.split("@", 1)[1].split(":")[0] == c.original_host for h in value.split(",")):
            return "the one given with -H"
    if (c.ssh_config or {}).get("user") == c.user:
        return "from your SSH config (~/.ssh/config, User)"
    if c.user == getpass.getuser():
        return (f"your user name on this machine: -H without user@ logs in as {c.user}. If your account "
                f"on the host has another name, give it: -H NAME@{c.original_host}")
    return "from Fabric's configuration (user)"


def connect_failure(c, exc: BaseException, known: Path) -> str:
    """The message for a connection that failed with EXC."""
    from paramiko.ssh_exception import AuthenticationException, BadHostKeyException, SSHException

    name = c.host if c.port == 22 else f"[{c.host}]:{c.port}"
    target = f"{c.user}@{c.host}:{c.port}"
    if isinstance(exc, BadHostKeyException):
        return (f"The host key of {name} is not the one recorded in {known}: refusing to "
                f"connect. If the host really changed its key, remove the old entry "
                f"(ssh-keygen -R '{name}' -f {known}) and connect again.")
    if isinstance(exc, AuthenticationException) or (isinstance(exc, SSHException)
                                                     and "authentication" in str(exc).lower()):
        return (f"Could not log in as {target}: {exc}. The user name {c.user!r} is {user_source(c)}. "
                "Check the key (fab -i KEY) and the account's ~/.ssh/authorized_keys.")
    if isinstance(exc, SSHException) and "known_hosts" in str(exc):
        return (f"{name} is not in {known}, so its identity cannot be checked: refusing to "
                f"connect. Connect once with ssh (ssh -p {c.port} {c.user}@{c.host}) and compare "
                "the fingerprint, or set shim.host_key_policy: accept-new (or shim.known_hosts "
                "to another file).")
    if isinstance(exc, OSError):
        return f"Cannot connect to {target}: {exc.strerror or exc}"
    return f"SSH to {target} failed: {exc}"
