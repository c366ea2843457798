"""The app log: format, permissions, capture of output/warnings/logging, and rotation that stays
correct with several processes and threads writing at once (as Passenger's app processes do)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

from shim.runtime import applog
from shim.runtime.applog import AppLog, format_entry
from shim.runtime.config import LoggingConfig
from shim.ops.logview import ENTRY, log_files, parse_entries, read_entries
from shim.runtime.redact import Redactor

REPO = Path(__file__).resolve().parents[1]


def cfg_for(path: Path, **kw) -> LoggingConfig:
    return LoggingConfig(path=path, starts_path=path.parent / "starts.jsonl", **kw)


@pytest.fixture
def restore_streams():
    """setup() replaces sys.stdout/sys.stderr and the root logger's handlers: undo it."""
    applog.release()  # an earlier in-process get_app() (another test module) may have set it up
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, applog.AppLogHandler)]
    handlers, level = list(root.handlers), root.level
    yield
    applog.release()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_entry_format_header_and_indented_continuation():
    text = format_entry("ERROR", "my logger", "first\nsecond\n  third", epoch=0.5, pid=7)
    lines = text.splitlines()
    assert lines[0] == "1970-01-01T00:00:00.500Z [7] ERROR my_logger: first"
    assert lines[1:] == ["  second", "    third"]
    assert ENTRY.match(lines[0])
    # A message line that looks like a header cannot start a new entry.
    fake = format_entry("INFO", "stdout", "x\n1970-01-01T00:00:00.000Z [1] ERROR shim: forged")
    assert len(list(parse_entries(fake.splitlines()))) == 1


def test_new_log_dir_and_file_are_private(tmp_path):
    log = AppLog(tmp_path / "site" / "logs" / "app.log")
    log.write("hello")
    d = stat.S_IMODE(os.stat(tmp_path / "site" / "logs").st_mode)
    f = stat.S_IMODE(os.stat(log.path).st_mode)
    assert d in (0o700, 0o750)
    assert f in (0o600, 0o640)
    assert not d & 0o007 and not f & 0o007
    # group bits only for a safe group
    from shim.runtime.permissions import group_is_safe

    if not group_is_safe(os.stat(log.path).st_gid):
        assert f == 0o600 and d == 0o700


def test_existing_world_readable_log_loses_world_bits(tmp_path):
    p = tmp_path / "app.log"
    p.write_text("old\n")
    os.chmod(p, 0o644)
    AppLog(p).write("new")
    assert not stat.S_IMODE(os.stat(p).st_mode) & 0o007
    assert p.read_text().startswith("old\n")


def test_setup_reports_unwritable_log(tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    log, problems = applog.setup(cfg_for(blocker / "app.log"), [])
    assert log is None
    assert [p.code for p in problems] == ["log-unwritable"]
    assert str(blocker / "app.log") in problems[0].where


def test_setup_disabled_does_nothing(tmp_path):
    log, problems = applog.setup(cfg_for(tmp_path / "app.log", enabled=False), [])
    assert log is None and problems == []
    assert not (tmp_path / "app.log").exists()


def test_capture_stdout_stderr_warnings_logging(tmp_path, restore_streams):
    root = logging.getLogger()
    passenger = logging.StreamHandler()  # what Passenger's basicConfig() installs
    root.addHandler(passenger)
    log, problems = applog.setup(cfg_for(tmp_path / "app.log", level="INFO"), ["hunter2-secret"])
    assert problems == []
    assert passenger not in root.handlers
    print("printed line", "hunter2-secret")
    print("partial", end="")
    sys.stdout.flush()
    sys.stderr.write("to stderr\nsecond line\n")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("careful now", UserWarning, stacklevel=1)
    logging.getLogger("myapp").info("info record %d", 42)
    logging.getLogger("myapp").debug("not at INFO")
    try:
        int("not a number")
    except ValueError:
        logging.getLogger("myapp").exception("it broke")
    sys.stdout.buffer.write(b"bytes line\n")
    # A handler the app adds later is left alone.
    with open(os.devnull, "w") as devnull:
        own = logging.StreamHandler(devnull)
        root.addHandler(own)
        applog.release()
        assert own in root.handlers
        root.removeHandler(own)

    entries = list(read_entries(log.path))
    by_source = {}
    for e in entries:
        by_source.setdefault(e["source"], []).append(e)
    assert [e["message"] for e in by_source["stdout"]] == [
        "printed line [redacted]", "partial", "bytes line"]
    assert by_source["stderr"][0]["message"] == "to stderr"
    assert by_source["stderr"][0]["lines"][1] == "  second line"
    assert "careful now" in by_source["py.warnings"][0]["message"]
    messages = [e["message"] for e in by_source["myapp"]]
    assert messages == ["info record 42", "it broke"]
    assert by_source["myapp"][1]["level"] == "ERROR"
    assert any("ValueError" in line for line in by_source["myapp"][1]["lines"])
    assert all(e["pid"] == os.getpid() for e in entries)
    assert "hunter2-secret" not in log.path.read_text()


def test_setup_twice_does_not_stack(tmp_path, restore_streams):
    applog.setup(cfg_for(tmp_path / "a.log"), [])
    log, _ = applog.setup(cfg_for(tmp_path / "b.log"), [])
    root = logging.getLogger()
    assert sum(isinstance(h, applog.AppLogHandler) for h in root.handlers) == 1
    print("once")
    assert "once" in log.path.read_text()
    assert "once" not in (tmp_path / "a.log").read_text()


def test_startup_records_state_and_problems(tmp_path):
    from shim.runtime.problems import Problem

    log = AppLog(tmp_path / "app.log", redact=Redactor(["s3cr3t-value"]))
    log.startup("error", [Problem("config-syntax", "config.toml is bad near s3cr3t-value",
                                  "/site/config.toml line 3", "Fix the quotes.", "detail line")])
    text = (tmp_path / "app.log").read_text()
    assert "process started: state=error" in text
    assert "start-up problem [config-syntax]" in text
    assert "where: /site/config.toml line 3" in text and "fix:   Fix the quotes." in text
    assert "s3cr3t-value" not in text
    errors = [e for e in read_entries(tmp_path / "app.log") if e["level"] == "ERROR"]
    assert len(errors) == 2


def test_rotation_single_process_keeps_bound(tmp_path):
    log = AppLog(tmp_path / "app.log", max_bytes=2000, backups=2)
    for i in range(500):
        log.entry("INFO", "stdout", f"line {i:04d} " + "x" * 40)
    files = log_files(log.path)
    assert [p.name for p in files] == ["app.log.2", "app.log.1", "app.log"]
    assert all(p.stat().st_size <= 2000 for p in files)
    # The newest lines survive, in order, with nothing missing between them.
    numbers = [int(e["message"].split()[1]) for e in read_entries(log.path)]
    assert numbers == list(range(numbers[0], 500))


def test_oversized_entry_is_truncated_to_bound(tmp_path):
    log = AppLog(tmp_path / "app.log", max_bytes=4096, backups=1)
    log.entry("ERROR", "x", "y" * 10000)
    assert log.path.stat().st_size <= 4096
    assert "truncated" in log.path.read_text()


def test_zero_backups_starts_over(tmp_path):
    log = AppLog(tmp_path / "app.log", max_bytes=1000, backups=0)
    for i in range(100):
        log.entry("INFO", "s", f"{i}" * 20)
    assert [p.name for p in log_files(log.path)] == ["app.log"]
    assert log.path.stat().st_size <= 1000


def test_threads_rotate_without_loss(tmp_path):
    max_bytes, backups = 20000, 50
    log = AppLog(tmp_path / "app.log", max_bytes=max_bytes, backups=backups)

    def worker(n):
        for i in range(300):
            log.entry("INFO", f"t{n}", f"{n}:{i}:" + "z" * 30)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = log_files(log.path)
    assert all(p.stat().st_size <= max_bytes for p in files)
    seen = [e["message"].split(":")[:2] for e in read_entries(log.path)]
    assert len(seen) == 6 * 300  # enough backups that nothing was dropped
    for n in range(6):  # each thread's lines in order
        mine = [int(i) for t, i in seen if t == str(n)]
        assert mine == list(range(300))


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from shim.runtime.applog import AppLog
    log = AppLog({path!r}, max_bytes={max_bytes}, backups={backups})
    n = int(sys.argv[1])
    for i in range({count}):
        log.entry("INFO", "w%d" % n, "%d:%d:" % (n, i) + "p" * (i % 50))
""")


def _run_writers(tmp_path, procs, count, max_bytes, backups):
    script = tmp_path / "writer.py"
    path = tmp_path / "logs" / "app.log"
    script.write_text(WRITER.format(repo=str(REPO), path=str(path), max_bytes=max_bytes,
                                    backups=backups, count=count))
    children = [subprocess.Popen([sys.executable, str(script), str(n)]) for n in range(procs)]
    assert [c.wait(timeout=120) for c in children] == [0] * procs
    return path


def test_processes_rotate_without_loss(tmp_path):
    """Several processes (like Passenger's) write at once: every line is kept exactly once and
    in order per process, and no file passes max_bytes. With plain RotatingFileHandler the other
    processes would keep writing into the renamed file and lines would be lost or files grow."""
    procs, count = 4, 1500
    path = _run_writers(tmp_path, procs, count, max_bytes=16384, backups=100)
    files = log_files(path)
    assert len(files) > 5  # it really rotated, many times
    assert all(p.stat().st_size <= 16384 for p in files)
    seen = [tuple(map(int, e["message"].split(":")[:2])) for e in read_entries(path)]
    assert len(seen) == procs * count
    for n in range(procs):
        assert [i for p, i in seen if p == n] == list(range(count))


def test_processes_bound_total_size_when_rotation_drops(tmp_path):
    """With few backups the oldest lines are dropped, but only whole oldest files: what is left
    is the newest lines of each process, contiguous, and disk use stays within the bound."""
    procs, count, max_bytes, backups = 3, 2000, 8192, 2
    path = _run_writers(tmp_path, procs, count, max_bytes=max_bytes, backups=backups)
    files = log_files(path)
    assert len(files) == backups + 1
    assert sum(p.stat().st_size for p in files) <= (backups + 1) * max_bytes
    seen = [tuple(map(int, e["message"].split(":")[:2])) for e in read_entries(path)]
    assert seen
    for n in range(procs):
        mine = [i for p, i in seen if p == n]
        if mine:  # a process that finished early may have had all its lines rotated away
            assert mine == list(range(mine[0], count))  # no gaps: only the oldest dropped


def test_forked_child_writes_safely(tmp_path):
    log = AppLog(tmp_path / "app.log", max_bytes=4096, backups=20)
    pid = os.fork()
    if pid == 0:  # child: its own lock description after the fork handler ran
        try:
            for i in range(300):
                log.entry("INFO", "child", f"c:{i}")
        finally:
            os._exit(0)
    for i in range(300):
        log.entry("INFO", "parent", f"p:{i}")
    os.waitpid(pid, 0)
    seen = [e["message"] for e in read_entries(log.path)]
    assert len(seen) == 600
    assert all(p.stat().st_size <= 4096 for p in log_files(log.path))


def test_unwritable_after_start_is_reported_once_and_never_raises(tmp_path, capsys):
    log = AppLog(tmp_path / "app.log")
    os.close(log._fd)
    log._fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail with EBADF
    log.write("one")
    log.write("two")
    err = capsys.readouterr().err
    assert err.count("cannot write the app log") <= 1


def test_log_directory_removed_while_running_is_recreated(tmp_path):
    import shutil

    log = AppLog(tmp_path / "logs" / "app.log", max_bytes=4096, backups=1)
    log.write("before")
    shutil.rmtree(tmp_path / "logs")
    log.write("after")
    assert (tmp_path / "logs" / "app.log").read_text() == "after\n"
    assert stat.S_IMODE(os.stat(tmp_path / "logs").st_mode) in (0o700, 0o750)
    other = AppLog(tmp_path / "logs" / "app.log", max_bytes=4096, backups=1)
    assert os.fstat(other._lockfd).st_ino == os.fstat(log._lockfd).st_ino  # same lock again
