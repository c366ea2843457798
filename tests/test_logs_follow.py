"""Issue 19 item 7: `logs --follow` showed only the rest of the file it was reading and then the
new app.log, silently skipping every file rotated in between (2,036 of 2,800 entries never shown
when more than one rotation happened within its poll). Now it shows every entry across the
rotations, or says that entries were skipped. The writer is a real separate process, as an app
process of Passenger is."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

from shim.ops import logview

REPO = Path(__file__).resolve().parents[1]
WRITER = """
import sys, time
from pathlib import Path
from shim.runtime.applog import AppLog
path, bursts, per_burst = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pause, backups = float(sys.argv[4]), int(sys.argv[5])
log = AppLog(path, max_bytes=8192, backups=backups)
n = 0
for b in range(bursts):
    for _ in range(per_burst):  # a burst: several rotations, all within one of the follower's polls
        log.entry("INFO", "stdout", f"entry {n:05d} " + "e" * 60)
        n += 1
    time.sleep(pause)
"""


def follow_while(path: Path, *writer_args: str) -> str:
    out = io.StringIO()
    stop = threading.Event()
    t = threading.Thread(target=logview.follow, args=(path, False, out, None, stop))
    t.start()
    time.sleep(0.7)  # the follower is at the end of the log, waiting
    subprocess.run([sys.executable, "-c", WRITER, str(path), *writer_args], cwd=REPO, check=True, timeout=120)
    time.sleep(1.5 + logview.POLL_SECONDS)
    stop.set()
    t.join()
    return out.getvalue()


def numbers(text: str) -> list[int]:
    return [int(line.split("entry ")[1][:5]) for line in text.splitlines() if "stdout: entry " in line]


def test_every_entry_is_shown_across_several_rotations_within_one_poll(tmp_path):
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.write_text("")
    # 2,800 entries of ~110 bytes, about 70 per 8 KiB file: bursts of 200 (3 rotations) with a
    # pause of two polls between them.
    text = follow_while(path, "14", "200", "1.0", "3")
    assert numbers(text) == list(range(2800)), (len(numbers(text)), text[-500:])
    assert "were deleted before they could be shown" not in text


def test_skipped_entries_are_announced(tmp_path, monkeypatch):
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.write_text("")
    # Bursts of 1,000 entries (14 rotations) with one backup, each within one (long) poll: whole
    # files are gone before the follower looks; it says so instead of silently going on.
    monkeypatch.setattr(logview, "POLL_SECONDS", 4.0)
    text = follow_while(path, "3", "1000", "5.0", "1")
    got = numbers(text)
    assert got == sorted(set(got)) and got[-1] == 2999
    assert "rotated more times within" in text and "were deleted before they could be shown" in text
