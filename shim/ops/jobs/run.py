"""`wsgi-shim run SITE -- CMD [ARGS...]` and `run SITE --job NAME`: a command run exactly as
the app runs, with its output kept in the app log.

What "as the app runs" means (the same as get_app() in shim/runtime/loader.py):
  * the site's venv: its bin/ first on PATH, VIRTUAL_ENV set, PYTHONHOME removed;
  * [secret_files] (their paths) and [environment] in the environment (Config.env_vars);
  * the working directory is [wsgi] chdir as it resolves now (for a deployed site, the release
    `current` points to: a deploy during a long job does not move it);
  * the site's umask: 027 when the app root's group is a project group (group may read what
    the job writes, as the app's files), else 077.

With a terminal on stdin and stdout the command gets a terminal of its own (a pty), so
`python manage.py createsuperuser` and `shell` work; otherwise stdin is passed through. In both
cases everything it prints goes to our stdout and is kept; one app-log entry per run then
records a run id, the command, start, duration, exit status and the output (masked by the
site's redactor, head and tail kept when it is long). The exit status is the command's (128+N
for a signal, 124 after --timeout).
"""

from __future__ import annotations

import fcntl
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from shim.ops.jobs import records
from shim.runtime.config import JOB_NAME, Config, load_config
from shim.runtime.layout import Site, beside_log
from shim.runtime.loader import site_redactor
from shim.runtime.problems import Problem

TIMED_OUT = 124  # as timeout(1)
NOT_FOUND = 127  # as a shell
CANNOT_RUN = 126  # as a shell: found, but it cannot be executed
LOCK_BUSY = 75  # EX_TEMPFAIL: try again later
KEEP_HEAD = 16 * 1024  # of a long output, the log keeps the start and the end
KEEP_TAIL = 48 * 1024
PAUSE = 0.2  # seconds of silence after which a partial output line is shown
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL after a timeout


class RunError(Exception):
    """A message for the user: the command could not be started. code is the exit status."""

    def __init__(self, message: str, code: int = 1, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.problems = problems or []


class RunOptions:
    def __init__(self, command: list[str] | None = None, job: str | None = None, timeout: float = 0,
                 lock: str | None = None, wait_lock: bool = False) -> None:
        self.command = command or []
        self.job = job
        self.timeout = timeout
        self.lock = lock
        self.wait_lock = wait_lock


class RunResult:
    def __init__(self, run_id: str, exit: int, started: float, duration: float, timed_out: bool) -> None:
        self.run_id, self.exit, self.started = run_id, exit, started
        self.duration, self.timed_out = duration, timed_out


class Output:
    """What the command printed: echoed to `sink` as it comes, kept (head and tail) for the log.

    With `mask` (not at a terminal: a cron job's output, a pipe, a CI log) the echo is masked
    line by line, a partial line when the command pauses (flush_partial). At a terminal the
    session is the owner's own, as over ssh: keys and output pass unchanged."""

    def __init__(self, sink, mask=None) -> None:
        self.sink = sink
        self.mask = mask
        self.partial = b""
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def _echo(self, data: bytes) -> None:
        if self.sink is None or not data:
            return
        try:
            self.sink.write(data)
            self.sink.flush()
        except (OSError, ValueError):
            self.sink = None  # a closed stdout (a pipe gone) must not stop the command

    def flush_partial(self) -> None:
        if self.partial:
            self._echo(self.mask(self.partial.decode("utf-8", "replace")).encode())
            self.partial = b""

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if self.mask is None:
            self._echo(data)
        else:
            self.partial += data
            complete, _, self.partial = self.partial.rpartition(b"\n")
            if complete:
                self._echo(self.mask(complete.decode("utf-8", "replace") + "\n").encode())
            if len(self.partial) > 65536:
                self.flush_partial()
        room = KEEP_HEAD - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        del self.tail[:-KEEP_TAIL]

    def text(self) -> str:
        left_out = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {left_out} bytes of output left out ...]\n".encode() if left_out > 0 else b""
        raw = bytes(self.head) + middle + bytes(self.tail)
        return raw.decode("utf-8", "replace").replace("\r\n", "\n")


def site_config(site: Site) -> Config:
    cfg, problems = load_config(site.approot)
    if cfg is None:
        raise RunError("config.toml cannot be read, so the site's environment is unknown.", 1, problems)
    if cfg.venv is None:
        raise RunError(f"{cfg.file} has no [passenger] passenger_python, so the site's venv is unknown.")
    return cfg


def command_of(cfg: Config, opts: RunOptions) -> tuple[list[str], float, str | None]:
    """argv, timeout and lock name: from --job NAME's [jobs.NAME], or as given."""
    if opts.job is None:
        if not opts.command:
            raise RunError("no command given: wsgi-shim run SITE -- CMD [ARGS...] (or --job NAME)", 2)
        return opts.command, opts.timeout, opts.lock
    job = cfg.jobs.get(opts.job)
    if job is None:
        known = ", ".join(sorted(cfg.jobs)) or "none"
        raise RunError(f"no job {opts.job!r} in {cfg.file} (jobs: {known}); `wsgi-shim check` names jobs "
                       "it could not read.", 2)
    try:
        argv = shlex.split(job["command"])
    except ValueError as exc:
        raise RunError(f"[jobs.{opts.job}] command cannot be split into words: {exc}.", 2) from None
    if not argv:
        raise RunError(f"[jobs.{opts.job}] command is empty.", 2)
    # A job never overlaps itself: a slow run and the next tick would otherwise race.
    return argv, opts.timeout or job["timeout"], opts.lock or opts.job


def environment(cfg: Config) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(cfg.venv)
    env["PATH"] = f"{cfg.venv}/bin" + (f":{env['PATH']}" if env.get("PATH") else ":/usr/bin:/bin")
    env.update(cfg.env_vars())
    return env


def site_umask(cfg: Config) -> int:
    from shim.runtime.permissions import group_is_safe

    try:
        gid = os.stat(cfg.app_root).st_gid
        return 0o027 if group_is_safe(gid, cfg.passenger_user or None) else 0o077
    except (OSError, KeyError, ValueError):
        return 0o077


def program(argv: list[str], env: dict[str, str], cwd: str, cfg: Config) -> str:
    """The program's path (found in the venv's bin/ or on PATH), or RunError exit 127."""
    name = argv[0]
    if "/" in name:
        path = os.path.join(cwd, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    else:
        found = shutil.which(name, path=env["PATH"])
        if found:
            return found
    raise RunError(f"program {name!r} not found" + ("" if "/" in name else
                   f" in {cfg.venv}/bin or on PATH") + f" (working directory {cwd}).", NOT_FOUND)


class Lock:
    """flock on logs/run-NAME.lock, holding the pid and start time of its holder."""

    def __init__(self, log: Path, name: str) -> None:
        if not JOB_NAME.fullmatch(name):
            raise RunError(f"--lock {name!r}: use letters, digits, - and _ only.", 2)
        self.name = name
        self.path = beside_log(log, f"run-{name}.lock")
        self.fd = -1

    def acquire(self, wait: bool, say) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                              0o600)
        except OSError as exc:
            raise RunError(f"cannot open the lock file {self.path}: {exc.strerror}.") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            if not wait:
                os.close(self.fd)
                raise RunError(f"another run holds the lock {self.name!r}{holder}, so this one did not start. "
                               "Try again when it has finished, or give --wait-lock to wait for it.",
                               LOCK_BUSY) from None
            say(f"wsgi-shim run: waiting for the lock {self.name!r}{holder} ...")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode(), 0)

    def _holder(self) -> str:
        try:
            pid, since = os.pread(self.fd, 200, 0).decode().split()[:2]
            return f" (pid {int(pid)}, since {since})"
        except (OSError, ValueError):
            return ""

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock; the file stays for the next run
            self.fd = -1


def check_user(cfg: Config, what: str) -> None:
    """Only the site's user runs its commands: what they write (logs, locks, the app's own
    files) must stay the app's, and root's crontab must not run site code."""
    me = _user()
    if cfg.passenger_user and me != cfg.passenger_user:
        raise RunError(f"you are {me}, but the site runs as {cfg.passenger_user} ([passenger] passenger_user): "
                       f"{what} as that user, e.g. runuser -u {cfg.passenger_user} -- wsgi-shim ... "
                       f"(as root) or after ssh {cfg.passenger_user}@host.")


def run(site: Site, opts: RunOptions, say=lambda text: print(text, file=sys.stderr, flush=True)) -> RunResult:
    """Run the command; raises RunError when it cannot be started."""
    cfg = site_config(site)
    check_user(cfg, "run commands")
    argv, timeout, lock_name = command_of(cfg, opts)
    cwd = os.path.realpath(cfg.chdir_path)
    if not os.path.isdir(cwd):
        raise RunError(f"the working directory {cfg.chdir_path} ([wsgi] chdir) does not exist.")
    env = environment(cfg)
    exe = program(argv, env, cwd, cfg)
    lock = Lock(cfg.logging.path, lock_name) if lock_name else None
    if lock:
        lock.acquire(opts.wait_lock, say)
    try:
        run_id = os.urandom(4).hex()
        started = time.time()
        sys.stdout.flush()
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        out = Output(getattr(sys.stdout, "buffer", None), None if interactive else site_redactor(cfg))
        spawn = _run_in_pty if interactive else _run_piped
        try:
            status, timed_out = spawn(exe, argv, env, cwd, site_umask(cfg), timeout, out)
        except OSError as exc:  # not executable, a bad #! line, no memory to fork
            raise RunError(f"cannot start {exe}: {exc.strerror or exc}.", CANNOT_RUN) from None
        result = RunResult(run_id, TIMED_OUT if timed_out else status, started, time.time() - started, timed_out)
        if timed_out:
            say(f"wsgi-shim run: stopped after --timeout {timeout:g} s (exit {TIMED_OUT}).")
        _record(cfg, opts.job, argv, result, out)
        return result
    finally:
        if lock:
            lock.release()


def _exit_status(wait_status: int) -> int:
    return os.waitstatus_to_exitcode(wait_status) if wait_status >= 0 else 1


def _code(exitcode: int) -> int:
    return 128 - exitcode if exitcode < 0 else exitcode  # killed by signal N: 128+N, as a shell


def _stop(pid: int, done) -> None:
    """SIGTERM the command's process group, SIGKILL it if it has not ended after KILL_GRACE."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.05)


def _run_piped(exe, argv, env, cwd, umask, timeout, out: Output) -> tuple[int, bool]:
    """No terminal: stdin passed through, stdout and stderr read through one pipe."""
    proc = subprocess.Popen(argv, executable=exe, cwd=cwd, env=env, umask=umask, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    forward = _forward_signals(proc.pid)
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = False
    try:
        fd = proc.stdout.fileno()
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], PAUSE if left is None else min(left, PAUSE))
            if not ready and (left is None or left > PAUSE):
                out.flush_partial()  # a prompt or a progress line: shown while the command waits
                continue
            if not ready:
                timed_out = True
                _stop(proc.pid, lambda: proc.poll() is not None)
                break
            data = os.read(fd, 65536)
            if not data:
                break
            out.add(data)
        _drain(fd, out)
        out.flush_partial()
        return _code(proc.wait()), timed_out
    finally:
        forward()
        proc.stdout.close()


def _drain(fd: int, out: Output) -> None:
    """What is left in the pipe or pty after the end (never blocks)."""
    os.set_blocking(fd, False)
    try:
        while data := os.read(fd, 65536):
            out.add(data)
    except OSError:
        pass


def _forward_signals(pid: int):
    """SIGTERM, SIGHUP and SIGINT to us go to the command's process group (its own session);
    returns the function that restores the old handlers."""
    def handler(signum, frame):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass

    saved = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    return lambda: [signal.signal(s, h) for s, h in saved.items()]


def _run_in_pty(exe, argv, env, cwd, umask, timeout, out: Output) -> tuple[int, bool]:
    """A terminal of its own, our terminal raw meanwhile: keys go to the command unchanged
    (Ctrl-C included), its output to our terminal and to `out`."""
    import termios
    import tty

    pid, master = os.forkpty()
    if pid == 0:  # the child: never returns
        try:
            os.chdir(cwd)
            os.umask(umask)
            os.execve(exe, argv, env)
        finally:
            os._exit(NOT_FOUND)
    stdin = sys.stdin.fileno()
    def resized(signum=None, frame=None) -> None:  # the user's window, the command's terminal
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass

    resized()
    old_winch = signal.signal(signal.SIGWINCH, resized)
    saved = termios.tcgetattr(stdin)
    tty.setraw(stdin)
    try:
        timed_out = _pump(pid, master, stdin, timeout, out)
        _drain(master, out)
        _, status = os.waitpid(pid, 0)
    finally:
        termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)
    return _code(_exit_status(status)), timed_out


def _pump(pid: int, master: int, stdin: int, timeout: float, out: Output) -> bool:
    """Copy keys to the pty and its output out until it closes; True when the timeout hit."""
    deadline = time.monotonic() + timeout if timeout else None
    sources = [master, stdin]
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select(sources, [], [], wait)
        if not ready:
            # WNOWAIT: look without reaping; the caller's waitpid collects the status
            _stop(pid, lambda: os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None)
            return True
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the command and everything it started closed the terminal
                data = b""
            if not data:
                return False
            out.add(data)
        if stdin in ready:
            data = os.read(stdin, 4096)
            if not data:
                sources.remove(stdin)
            else:
                os.write(master, data)


def _record(cfg: Config, job: str | None, argv: list[str], result: RunResult, out: Output) -> None:
    """One app-log entry (masked) and, for a job, one record in logs/jobs.jsonl."""
    from shim.runtime.applog import AppLog

    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started))
    if job:
        records.append(cfg.logging.path, {"job": job, "run_id": result.run_id, "time": when,
                                          "epoch": result.started, "duration": round(result.duration, 3),
                                          "exit": result.exit, "timed_out": result.timed_out})
    if not cfg.logging.enabled:
        return
    what = f"job {job}" if job else "run"
    ending = "timed out" if result.timed_out else f"exit {result.exit}"
    lines = [f"{what} {result.run_id}: {ending} after {result.duration:.1f}s: {shlex.join(argv)}",
             f"started {when}, user {_user()}, in {os.path.realpath(cfg.chdir_path)}"]
    text = out.text()
    lines += ["output:", *text.rstrip("\n").split("\n")] if text.strip() else ["no output"]
    try:
        log = AppLog(cfg.logging.path, cfg.logging.max_bytes, cfg.logging.backups, site_redactor(cfg))
    except OSError as exc:  # a FIFO in its place, a full disk: the run's own status still stands
        print(f"wsgi-shim run: the app log {cfg.logging.path} cannot be written ({exc}); this run is not "
              "recorded there.", file=sys.stderr)
        return
    try:
        log.entry("INFO" if result.exit == 0 else "ERROR", "shim.run", "\n".join(lines))
    finally:
        log.close()


def _user() -> str:
    from shim.runtime.permissions import name_of_user

    return name_of_user(os.geteuid())
