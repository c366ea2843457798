"""Issue 19 item 4: logs/starts.jsonl is rotated (it grew without bound: one line per process
start, forever). Several real processes record starts at once, as Passenger's processes do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shim.runtime import records

REPO = Path(__file__).resolve().parents[1]
WRITER = """
import sys
from pathlib import Path
from shim.runtime import records
path, n, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(n):
    records.record_start(path, "app", [], {"tag": tag, "n": str(i)}, max_bytes=20_000)
"""


def test_start_records_rotate_and_stay_readable(tmp_path):
    path = tmp_path / "logs" / "starts.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), "300", f"p{k}"], cwd=REPO)
             for k in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["starts.jsonl", "starts.jsonl.1"], files
    for p in path.parent.iterdir():
        assert p.stat().st_size <= 20_000, (p, p.stat().st_size)
        for line in p.read_text().splitlines():
            json.loads(line)  # whole lines only: no torn record across processes or rotations
    latest = records.read_starts(path, limit=50)
    assert len(latest) == 50
    # Each writer's last record is among the newest, in order.
    for k in range(4):
        mine = [int(r["n"]) for r in latest if r["tag"] == f"p{k}"]
        assert mine == sorted(mine)
    assert any(r["n"] == "299" for r in latest)


def test_reading_spans_the_rotation(tmp_path):
    path = tmp_path / "starts.jsonl"
    for i in range(40):
        records.record_start(path, "app", [], {"n": str(i)}, max_bytes=4_000)
    assert records.backup_of(path).exists()
    current = len(path.read_text().splitlines())
    assert current < 40
    got = records.read_starts(path, limit=current + 5)
    assert [int(r["n"]) for r in got] == list(range(40 - len(got), 40))
