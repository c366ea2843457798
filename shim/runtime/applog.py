"""The app log: one file the developer owns, fed by every app process Passenger starts.

    applog, problems = shim.runtime.applog.setup(config.logging, redactor)
    applog.startup("app", problems)

What lands there (each entry stamped with UTC time, process id, level and source):
  * stdout and stderr of the app process (``print()``, ``wsgi.errors``, stray tracebacks),
  * Python warnings and the root logger (Passenger's own stderr handler is replaced; handlers
    the app adds itself are left alone),
  * start-up problems found by the checks (``AppLog.startup``),
  * unhandled request exceptions with their error id (shim.diagnostics).

Entry format, parsed by ``wsgi-shim logs`` (shim.logview)::

    2026-11-24T02:30:00.123Z [4242] INFO stdout: hello from print()
    2026-11-24T02:30:01.456Z [4242] ERROR shim.request: error id 3f9a1c2b7d: GET /boom HTTP/1.1 ...
      Traceback (most recent call last):
      ...

Continuation lines are indented by two spaces, and every control character but newline and tab
(CR, ESC, U+2028...) is written as a visible escape (``\r``, ``\x1b``), so a message can never
fake a new entry nor send escape sequences to the terminal of whoever reads the log.

Rotation is by size and safe across processes and threads: every write takes an exclusive
flock on ``<log>.lock``, reopens the log when another process rotated it (inode changed), and
rotates (app.log -> app.log.1 -> ... -> app.log.N) before a write would pass ``max_bytes``.
So app.log never exceeds max_bytes and the whole log never exceeds (backups + 1) * max_bytes.

Standard library only; cheap to import. Nothing here raises into the app: a failing disk is
reported once on the process's original stderr (Passenger's log) and otherwise ignored.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from shim.runtime.permissions import group_is_safe
from shim.runtime.problems import Problem
from shim.runtime.redact import Redactor, escape_controls, secret_env_values

TYPE_CHECKING = False  # importing typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from shim.runtime.config import LoggingConfig

LOCK_SUFFIX = ".lock"
TRUNCATED = " [entry truncated to fit max_bytes]\n"
# A partial line (no newline yet) held longer than this is written anyway.
MAX_PENDING = 65536


def timestamp(epoch: float | None = None) -> str:
    """UTC ISO-8601 with milliseconds and a Z: sorts as text, parses with datetime."""
    t = time.time() if epoch is None else epoch
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


def format_entry(level: str, source: str, message: str, epoch: float | None = None,
                 pid: int | None = None) -> str:
    """One log entry: header line plus two-space-indented continuation lines."""
    lines = message.rstrip("\n").split("\n")
    head = f"{timestamp(epoch)} [{os.getpid() if pid is None else pid}] {level} " \
           f"{'_'.join(source.split()) or '-'}: {lines[0]}"
    if len(lines) == 1:
        return head + "\n"
    return head + "\n" + "".join(f"  {line}\n" for line in lines[1:])


def _group_is_safe(gid: int) -> bool:
    try:
        return group_is_safe(gid, None)
    except (KeyError, OSError, ValueError):
        return False  # when in doubt, no group access


class AppLog:
    """An append-only, size-rotated log file shared by all processes of a site.

    ``write(text)`` appends text as-is (after redaction); ``entry(level, source, message)``
    formats one entry first. Both are thread-safe and process-safe, and never raise.
    """

    def __init__(self, path: Path, max_bytes: int = 1_048_576, backups: int = 3,
                 redact: Redactor | None = None) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        self.max_bytes = max(0, int(max_bytes))
        self.backups = max(0, int(backups))
        self.redact = redact if redact is not None else Redactor()
        self._tlock = threading.Lock()
        self._fd = -1
        self._lockfd = -1
        self._ident: tuple[int, int] | None = None
        self._mode = 0o600
        self._failed = False
        self._open_dir()
        self._lockfd = self._open_file(self.lock_path, os.O_RDWR)
        fcntl.flock(self._lockfd, fcntl.LOCK_EX)
        try:
            self._reopen()
        finally:
            fcntl.flock(self._lockfd, fcntl.LOCK_UN)
        _register_fork_handler(self)

    # -- public ------------------------------------------------------------------------------

    def write(self, text: str, redact: bool = True) -> None:
        """Append text (a whole entry or more; a newline is added if missing). redact=False only
        for text wsgi-shim made from facts that hold no secret (the healthy start's line)."""
        if not text.endswith("\n"):
            text += "\n"
        try:
            if redact and self.redact:
                text = self.redact(text)
            # One entry is one entry: a CR or an escape sequence from a request path or a print()
            # must not start a line of its own for `wsgi-shim logs`, nor reach a terminal raw.
            text = escape_controls(text)
            self._append(text.encode("utf-8", "backslashreplace"))
        except Exception as exc:  # noqa: BLE001 - never into the app; said once, to Passenger
            self._report_failure(exc)

    def entry(self, level: str, source: str, message: str, epoch: float | None = None,
              pid: int | None = None) -> None:
        self.write(format_entry(level, source, message, epoch, pid))

    def problem_lines(self, problems: Iterable[Problem]) -> list[str]:
        """Problems as log text: what, where, fix, detail (redacted on write)."""
        lines: list[str] = []
        for p in problems:
            lines.append(f"start-up problem [{p.code}] {p.what}")
            lines.append(f"where: {p.where}")
            lines.append(f"fix:   {p.fix}")
            if p.detail:
                lines += ["  " + line for line in p.detail.rstrip().splitlines()]
        return lines

    def startup(self, state: str, problems: list[Problem], error_id: str = "") -> None:
        """Record one process start and every problem the checks found (what/where/fix).
        A failed start is one entry carrying its error id, so `logs --id` shows all of it."""
        import pwd

        try:  # the real uid: $USER may still name whoever started the server
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = str(os.geteuid())
        level = "ERROR" if state == "error" else ("WARNING" if problems else "INFO")
        head = (f"process started: state={state} user={user} gid={os.getgid()} "
                f"python={sys.executable} ({sys.version.split()[0]}) problems={len(problems)}")
        if error_id:
            text = format_entry(level, "shim", "\n".join([f"{head} error id {error_id}",
                                                          *self.problem_lines(problems)]))
        else:
            text = format_entry(level, "shim", head)
            for p in problems:
                text += format_entry(level if state == "error" else "WARNING", "shim",
                                     "\n".join(self.problem_lines([p])))
        # A start without problems is user, gid and Python: no need to build the redactor for it.
        self.write(text, redact=bool(problems))

    def close(self) -> None:
        with self._tlock:
            for fd in (self._fd, self._lockfd):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._fd = self._lockfd = -1

    # -- files -------------------------------------------------------------------------------

    def _open_dir(self) -> None:
        """Create missing directories 0700 (0750 when the group is a safe project group)."""
        missing = []
        d = self.path.parent
        while not d.exists() and d != d.parent:
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                continue
            st = os.stat(d)
            os.chmod(d, 0o750 if _group_is_safe(st.st_gid) else 0o700)

    def _open_file(self, path: Path, flags: int) -> int:
        """Open or create path: new files 0600 (0640 with a safe group); never world-readable."""
        # O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, forever.
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a FIFO without a reader
                from shim.runtime.files import NotReadable

                raise NotReadable(path, "is a FIFO (named pipe), not a regular file") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                from shim.runtime.files import NotReadable, kind_of

                raise NotReadable(path, f"is {kind_of(st.st_mode)}, not a regular file")
            os.set_blocking(fd, True)
            if st.st_uid != os.geteuid():
                # Another user's file (0666 in a shared directory): they would read every entry
                # and could append their own. The site's records go only into its own files.
                from shim.runtime.files import NotReadable
                from shim.runtime.permissions import name_of_user

                raise NotReadable(path, f"is owned by {name_of_user(st.st_uid)}, not by the site's user "
                                        f"{name_of_user(os.geteuid())}; wsgi-shim writes only to its own files")
            if st.st_uid == os.geteuid():
                wanted = 0o640 if _group_is_safe(st.st_gid) else 0o600
                current = stat.S_IMODE(st.st_mode)
                # New files get exactly `wanted`; old ones only lose bits (never gain any).
                new = wanted if st.st_size == 0 else current & wanted
                if new != current:
                    os.fchmod(fd, new)
                self._mode = wanted
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _reopen(self) -> None:
        """(Re)open the log file; caller holds the locks."""
        fd = self._open_file(self.path, os.O_WRONLY | os.O_APPEND)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        st = os.fstat(fd)
        self._ident = (st.st_dev, st.st_ino)

    def _append(self, data: bytes) -> None:
        if self.max_bytes and len(data) > self.max_bytes:
            keep = max(0, self.max_bytes - len(TRUNCATED))
            data = data[:keep].rstrip(b"\n") + TRUNCATED.encode()
            data = data[-self.max_bytes:]
        with self._tlock:
            if self._fd < 0:
                return  # closed
            fcntl.flock(self._lockfd, fcntl.LOCK_EX)
            try:
                try:
                    st = os.stat(self.path)
                    current = (st.st_dev, st.st_ino) == self._ident
                except FileNotFoundError:
                    current = False
                if not current:  # another process rotated (or someone removed the file)
                    self._recover()
                    st = os.fstat(self._fd)
                if self.max_bytes and st.st_size and st.st_size + len(data) > self.max_bytes:
                    self._rotate()
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            finally:
                # _recover() may have swapped the lock file: unlock the one held now.
                fcntl.flock(self._lockfd, fcntl.LOCK_UN)

    def _recover(self) -> None:
        """Reopen the current log; if the developer removed the whole directory, recreate it
        (and the lock file, so every process ends up locking the same new one)."""
        try:
            self._reopen()
        except FileNotFoundError:
            self._open_dir()
            old = self._lockfd
            self._lockfd = self._open_file(self.lock_path, os.O_RDWR)
            fcntl.flock(self._lockfd, fcntl.LOCK_EX)
            os.close(old)  # releases the old (unlinked) lock
            self._reopen()

    def _rotate(self) -> None:
        """app.log -> app.log.1 -> ... -> app.log.N (oldest dropped); caller holds the locks."""
        base = str(self.path)
        if self.backups:
            for i in range(self.backups - 1, 0, -1):
                try:
                    os.replace(f"{base}.{i}", f"{base}.{i + 1}")
                except FileNotFoundError:
                    pass
            os.replace(base, f"{base}.1")
        else:
            os.unlink(base)
        self._reopen()

    def _report_failure(self, exc: BaseException) -> None:
        if self._failed:
            return
        self._failed = True
        try:
            stream = _ORIGINAL.get("stderr") or sys.__stderr__
            if stream is not None:
                stream.write(f"wsgi-shim: cannot write the app log {self.path}: {exc}; "
                             "this process's log output is lost while that lasts\n")
                stream.flush()
        except (OSError, ValueError):  # Passenger's stderr is gone too: nowhere left to say it
            return

    def _after_fork(self) -> None:
        # A forked child shares the parent's open file descriptions, and flock locks belong to
        # the description: reopen the lock file so parent and child exclude each other again.
        self._tlock = threading.Lock()
        try:
            if self._lockfd >= 0:
                os.close(self._lockfd)
                self._lockfd = self._open_file(self.lock_path, os.O_RDWR)
        except OSError:
            self._lockfd = -1
            self._fd = -1


_FORK_LOGS: list[AppLog] = []


def _after_fork_in_child() -> None:
    for log in _FORK_LOGS:
        log._after_fork()


def _register_fork_handler(log: AppLog) -> None:
    if not _FORK_LOGS and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    _FORK_LOGS.append(log)


# -- capture of stdout, stderr, warnings and the root logger -----------------------------------

class LogStream(io.TextIOBase):
    """A text stream that turns complete lines into log entries (one entry per write call).

    Replaces sys.stdout / sys.stderr at the Python level only: file descriptors 0-2 stay
    Passenger's (fd 0 is its owner pipe). ``fileno()`` answers the original stream's descriptor
    so that code needing a real file (faulthandler, subprocess) still works.
    """

    def __init__(self, applog: AppLog, name: str, level: str, original: Any) -> None:
        super().__init__()
        self.applog = applog
        self.name = name
        self.level = level
        self.original = original
        self._pending = ""
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "backslashreplace"

    @property
    def buffer(self) -> _BinaryToText:
        return _BinaryToText(self)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        if self.original is None:
            raise io.UnsupportedOperation("fileno")
        return self.original.fileno()

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        with self._lock:
            text = self._pending + s
            if "\n" not in text and len(text) < MAX_PENDING:
                self._pending = text
                return len(s)
            if len(text) >= MAX_PENDING and "\n" not in text:
                complete, self._pending = text, ""
            else:
                complete, _, self._pending = text.rpartition("\n")
        self.applog.entry(self.level, self.name, complete)
        return len(s)

    def flush(self) -> None:
        with self._lock:
            text, self._pending = self._pending, ""
        if text:
            self.applog.entry(self.level, self.name, text)

    def close(self) -> None:  # closing sys.stdout must not break later prints
        self.flush()


class _BinaryToText(io.RawIOBase):
    """sys.stdout.buffer for code that writes bytes."""

    def __init__(self, stream: LogStream) -> None:
        super().__init__()
        self._stream = stream

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._stream.write(data.decode("utf-8", "backslashreplace"))
        return len(data)

    def flush(self) -> None:
        self._stream.flush()


class AppLogHandler(logging.Handler):
    """Root-logger handler writing records (and their tracebacks) as app log entries."""

    def __init__(self, applog: AppLog, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.applog = applog
        self._fallback = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            formatter = self.formatter or self._fallback
            if record.exc_info:
                message += "\n" + formatter.formatException(record.exc_info)
            elif record.exc_text:
                message += "\n" + record.exc_text
            if record.stack_info:
                message += "\n" + formatter.formatStack(record.stack_info)
            self.applog.entry(record.levelname, record.name, message, record.created,
                              record.process)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own contract: handleError, never raise
            self.handleError(record)


# What setup() replaced, so a second setup() (a preview-server reload, a test) starts clean.
_ORIGINAL: dict[str, Any] = {}
_INSTALLED: dict[str, Any] = {}


def _is_console_handler(h: logging.Handler) -> bool:
    """Passenger's basicConfig handler (or any plain handler on the process's stdout/stderr)."""
    if type(h) is not logging.StreamHandler:
        return False
    stream = getattr(h, "stream", None)
    consoles = {id(sys.__stderr__), id(sys.__stdout__), id(_ORIGINAL.get("stderr")),
                id(_ORIGINAL.get("stdout"))}
    return id(stream) in consoles or isinstance(stream, LogStream)


def capture(applog: AppLog, level: str = "INFO") -> None:
    """Send stdout, stderr, warnings and the root logger to applog (idempotent)."""
    release()
    _ORIGINAL["stdout"], _ORIGINAL["stderr"] = sys.stdout, sys.stderr
    root = logging.getLogger()
    removed = [h for h in root.handlers if _is_console_handler(h)]
    for h in removed:
        root.removeHandler(h)
    handler = AppLogHandler(applog)
    root.addHandler(handler)
    _INSTALLED.update(handler=handler, removed=removed, root_level=root.level,
                      warnings=getattr(logging, "_warnings_showwarning", None) is not None)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    logging.captureWarnings(True)
    sys.stdout = LogStream(applog, "stdout", "INFO", _ORIGINAL["stdout"])
    sys.stderr = LogStream(applog, "stderr", "WARNING", _ORIGINAL["stderr"])


def release() -> None:
    """Undo capture(): restore streams and Passenger's handler (for tests and re-setup)."""
    if not _INSTALLED:
        return
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if isinstance(current, LogStream):
            current.flush()
            setattr(sys, name, _ORIGINAL.get(name) or getattr(sys, f"__{name}__"))
    root = logging.getLogger()
    root.removeHandler(_INSTALLED["handler"])
    for h in _INSTALLED["removed"]:
        root.addHandler(h)
    root.setLevel(_INSTALLED["root_level"])
    if not _INSTALLED["warnings"]:
        logging.captureWarnings(False)
    _INSTALLED.clear()


_CURRENT: list[AppLog] = []


def _replace_current(applog: AppLog) -> None:
    """Close the log of an earlier setup() in this process (its fds would otherwise leak)."""
    for old in _CURRENT:
        old.close()
        if old in _FORK_LOGS:
            _FORK_LOGS.remove(old)
    _CURRENT[:] = [applog]


def _problem(code: str, what: str, where: str, fix: str) -> Problem:
    # Warnings, as documented: the site serves without its log rather than not at all.
    return Problem(code, what, where, fix, severity="warning")


def setup(cfg: LoggingConfig, redact: Redactor | Sequence[str]) -> tuple[AppLog | None, list[Problem]]:
    """Open the app log and (with capture_output) route the process's output into it.

    ``redact`` is the process's Redactor (shim.runtime.loader builds it once); a list of secret
    values is accepted too and turned into one.

    Never raises. Returns (None, problems) when logging is off or the log cannot be opened;
    the problems are warnings: the site can still serve without its log.
    """
    problems: list[Problem] = []
    if not getattr(cfg, "enabled", True):
        release()
        return None, problems
    path = Path(cfg.path)
    try:
        if isinstance(redact, Redactor):
            redactor = redact
        else:
            redactor = Redactor(list(redact) + secret_env_values(), getattr(cfg, "redact", ()))
        for err in redactor.errors:
            problems.append(_problem(
                "log-redact-pattern",
                f"A [logging] redact pattern is unusable and is ignored: {err}.",
                "config.toml, [logging] redact", "Fix or remove the pattern (Python `re` syntax)."))
        try:
            applog = AppLog(path, cfg.max_bytes, cfg.backups, redactor)
        except OSError as exc:
            problems.append(_problem(
                "log-unwritable",
                f"The app log cannot be opened for writing ({exc.strerror or exc}); the app's "
                "output, warnings and request errors go to the server's log instead, which you "
                "cannot read.",
                str(path),
                f"Make {path.parent} a directory owned by the site's user (chmod 700), or set "
                "[logging] file to a path inside the app root that the site's user can write."))
            return None, problems
        _replace_current(applog)
        if getattr(cfg, "capture_output", True):
            capture(applog, getattr(cfg, "level", "INFO"))
        else:
            release()
        return applog, problems
    except Exception as exc:  # noqa: BLE001 - a bug here must not take the site down
        problems.append(_problem(
            "log-setup-failed", f"Setting up the app log failed: {type(exc).__name__}: {exc}.",
            str(path),
            "Report this as a wsgi-shim bug; meanwhile set [logging] capture_output = false."))
        return None, problems
