"""[jobs.NAME] checked by `wsgi-shim check`, installed by `wsgi-shim cron` in the site user's
crontab with the real `crontab` program, and shown by `wsgi-shim status`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.support.accounts import SITE_USER
from tests.support.sites import VENV, make_site, run_as_site, update_config, wsgi_shim

pytestmark = pytest.mark.realserver

# Lines of the user's own, with what editors and people leave: comments, blank lines, a
# variable, an escaped %, trailing spaces, a line without its final newline.
OWN = (b"# my own jobs\nMAILTO=\"\"\n\n15 4 * * * /usr/bin/printf 'x\\%s' >/dev/null   \n"
       b"@reboot /bin/true # keep me\n")


def _crontab() -> bytes:
    out = subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-l"], capture_output=True)
    return out.stdout if out.returncode == 0 else b""


def _set_crontab(data: bytes | None) -> None:
    if data is None:
        run_as_site(["crontab", "-r"])
    else:
        subprocess.run(["runuser", "-u", SITE_USER, "--", "crontab", "-"], input=data, check=True)


@pytest.fixture
def own_crontab():
    before = _crontab()
    _set_crontab(OWN)
    yield OWN
    _set_crontab(before or None)


def test_check_warns_about_bad_jobs_with_did_you_mean():
    site = make_site("jobs-check")
    update_config(site, {"jobs": {"nightly": {"schedule": "0 25 * * *", "command": "python manage.py x",
                                              "timout": 5},
                                  "clean": {"schedule": "*/10 * * * *", "command": "no-such-tool --all"},
                                  "fine": {"schedule": "@daily", "command": "python -c pass"}},
                         "alerts": {"mail": "not-an-address", "smpt": "x"}})
    out = wsgi_shim("check", str(site.site), "--json")
    data = json.loads(out.stdout)
    assert data["ok"] is True, out.stdout  # warnings only: the site still serves
    text = "\n".join(f"{p['code']} {p['what']}" for p in data["problems"])
    assert "Unknown key 'timout' in [jobs.nightly]. Did you mean 'timeout'?" in text
    assert "Unknown key 'smpt' in [alerts]. Did you mean 'smtp'?" in text
    assert "job-command [jobs.clean] runs 'no-such-tool'" in text
    assert "alerts-bad [alerts] mail 'not-an-address' is not a mail address." in text
    assert "fine" not in text
    update_config(site, {"jobs": {"nightly": {"schedule": "0 25 * * *", "command": "python -c pass"}}})
    data = json.loads(wsgi_shim("check", str(site.site), "--json").stdout)
    assert any(p["code"] == "job-schedule" and "25 is out of range for the hour field (0-23)" in p["what"]
               for p in data["problems"]), data


def test_cron_installs_one_block_keeps_other_lines_and_is_idempotent(own_crontab):
    site = make_site("cron-block")
    update_config(site, {"jobs": {"clear": {"schedule": "0 3 * * *", "command": "python -c pass"},
                                  "warm": {"schedule": "*/15 * * * *", "command": "python -c pass"}}})
    shown = wsgi_shim("cron", str(site.site), "--show")
    assert shown.returncode == 0 and _crontab() == own_crontab  # --show changes nothing
    out = wsgi_shim("cron", str(site.site))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Installed 2 jobs" in out.stdout
    installed = _crontab()
    assert installed.startswith(own_crontab)
    added = installed[len(own_crontab):].decode()
    assert added.rstrip("\n") == shown.stdout.rstrip("\n")
    shim = f"{VENV}/bin/wsgi-shim"
    assert f"0 3 * * * {shim} run {site.site} --job clear >/dev/null 2>&1" in added
    assert f"*/15 * * * * {shim} run {site.site} --job warm >/dev/null 2>&1" in added
    assert added.count("# >>> wsgi-shim") == 1 and "alert" not in added
    again = wsgi_shim("cron", str(site.site))
    assert "nothing changed" in again.stdout and _crontab() == installed
    # a changed config replaces the block in place, the alert check comes with [alerts]
    update_config(site, {"jobs": {"clear": {"schedule": "30 2 * * *", "command": "python -c pass"}},
                         "alerts": {"mail": "owner@example.org"}}, remove=[("jobs", "warm")])
    assert wsgi_shim("cron", str(site.site)).returncode == 0
    changed = _crontab()
    assert changed.startswith(own_crontab) and "--job warm" not in changed.decode()
    assert f"30 2 * * * {shim} run {site.site} --job clear" in changed.decode()
    assert f"*/5 * * * * {shim} alert {site.site}" in changed.decode()
    removed = wsgi_shim("cron", str(site.site), "--remove")
    assert removed.returncode == 0 and "Removed the block" in removed.stdout
    assert _crontab() == own_crontab  # byte for byte
    assert "nothing to remove" in wsgi_shim("cron", str(site.site), "--remove").stdout


def test_two_sites_keep_their_own_blocks(own_crontab):
    one, two = make_site("cron-one"), make_site("cron-two")
    for site in (one, two):
        update_config(site, {"jobs": {"tick": {"schedule": "@hourly", "command": "python -c pass"}}})
        assert wsgi_shim("cron", str(site.site)).returncode == 0
    both = _crontab().decode()
    assert both.count("# >>> wsgi-shim") == 2
    wsgi_shim("cron", str(one.site), "--remove")
    left = _crontab().decode()
    assert f"run {two.site} --job tick" in left and f"run {one.site} " not in left


def test_cron_refuses_a_bad_schedule_without_changing_anything(own_crontab):
    site = make_site("cron-bad")
    update_config(site, {"jobs": {"x": {"schedule": "every day", "command": "python -c pass"}}})
    out = wsgi_shim("cron", str(site.site))
    assert out.returncode == 1 and "[jobs.x] schedule: 'every day' has 2 fields, not 5" in out.stderr
    assert _crontab() == own_crontab


def test_status_and_check_tell_each_jobs_last_run():
    site = make_site("jobs-status")
    update_config(site, {"jobs": {"good": {"schedule": "* * * * *", "command": "python -c pass"},
                                  "bad": {"schedule": "0 0 1 1 *", "command": "python -c 'raise SystemExit(4)'"},
                                  "late": {"schedule": "0 * * * *", "command": "python -c pass"}}})
    status = wsgi_shim("status", str(site.site))
    assert "job:         late (0 * * * *): never run" in status.stdout
    for job in ("good", "bad", "late"):
        wsgi_shim("run", str(site.site), "--job", job)
    status = wsgi_shim("status", str(site.site))
    assert "job:         bad (0 0 1 1 *): last run " in status.stdout and ", exit 4, " in status.stdout
    data = json.loads(wsgi_shim("status", str(site.site), "--json").stdout)
    assert {j["name"]: j["last"]["exit"] for j in data["jobs"]} == {"bad": 4, "good": 0, "late": 0}
    # the "late" job's record is made three hours old: it missed its hourly runs since
    records = site.approot / "logs/jobs.jsonl"
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    for r in lines:
        if r["job"] == "late":
            r["epoch"] -= 3 * 3600
            r["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["epoch"]))
    records.write_text("".join(json.dumps(r) + "\n" for r in lines))
    problems = json.loads(wsgi_shim("check", str(site.site), "--json").stdout)["problems"]
    codes = {(p["code"], p["what"].split(" ")[1] if p["code"] == "job-overdue" else p["what"].split(" ")[5])
             for p in problems if p["code"].startswith("job-")}
    assert codes == {("job-failed", "bad"), ("job-overdue", "late")}, problems
