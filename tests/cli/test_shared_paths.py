"""[deploy] shared: data kept beside the code survives deploys, rollbacks, pruning and kills.

The site's app writes rows into an SQLite database and files into media/ as visitors would make
it (through the generated passenger_wsgi.py, loaded as Passenger loads it, as the site's user);
deploys and rollbacks run as the site's user through the real command.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.cli.test_deploy import _deploy_until, current, deploy, releases, source_dir
from tests.support.sites import load_like_passenger, make_site, update_config, write_file, wsgi_shim

pytestmark = pytest.mark.realserver

# A guestbook: each request adds a row (WAL mode, as busy sites set it) and an upload; the body
# names the release and what the site holds.
GUESTBOOK = '''
import os, sqlite3
VERSION = {version!r}
def application(environ, start_response):
    db = sqlite3.connect("db.sqlite3")
    db.execute("pragma journal_mode=wal")
    db.execute("create table if not exists visits (n integer primary key, version text)")
    db.execute("insert into visits (version) values (?)", (VERSION,))
    db.commit()
    rows = db.execute("select count(*) from visits").fetchone()[0]
    db.close()
    os.makedirs("media", exist_ok=True)
    with open(f"media/upload-{{rows}}.txt", "w") as f:
        f.write(VERSION)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{{VERSION}} rows={{rows}} uploads={{len(os.listdir('media'))}}".encode()]
'''


# Every GET of the guestbook writes: the check must not request it (the documented opt-out for a
# site whose pages have side effects), or each deploy's check would add a row.
NO_CHECK_REQUESTS = {"check": {"requests": []}}


def guestbook(site: Site, version: str, extra: dict[str, str] | None = None) -> Path:
    return source_dir(site, version, {"app.py": GUESTBOOK.format(version=version), **(extra or {})})


def visit(site: Site) -> str:
    return load_like_passenger(site).response.body


def rows(site: Site) -> list[str]:
    with sqlite3.connect(site.site / "shared/db.sqlite3") as db:
        return [v for (v,) in db.execute("select version from visits order by n")]


def ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def first_live_site(name: str) -> Site:
    """v1 deployed without [deploy] shared; two visits wrote their rows into the release itself."""
    site = make_site(name, config=NO_CHECK_REQUESTS)
    ok(deploy(site, guestbook(site, "v1"), "--init"))
    assert visit(site) == "v1 rows=1 uploads=1"
    assert visit(site) == "v1 rows=2 uploads=2"
    return site


def test_check_warns_that_data_inside_a_release_is_lost_at_the_next_deploy():
    site = first_live_site("shared-warn")
    v1 = current(site)
    out = ok(wsgi_shim("check", str(site.site), "--no-import"))
    assert "data-in-release" in out and "db.sqlite3 is an SQLite database inside release" in out
    assert 'shared = ["db.sqlite3"]' in out and 'shared = ["media/"]' in out
    assert f"{site.site}/releases/{v1}/media" in out

    update_config(site, {"deploy": {"shared": ["db.sqlite3", "media/"]}})
    out = ok(wsgi_shim("check", str(site.site), "--no-import"))
    assert "data-in-release" not in out and out.count("shared-not-moved") == 2
    assert "the next deploy moves it to" in out


def test_shared_data_survives_deploys_a_source_copy_rollbacks_and_pruning():
    site = first_live_site("shared-life")
    v1 = current(site)
    update_config(site, {"deploy": {"shared": ["db.sqlite3", "media/"]}})

    out = ok(deploy(site, guestbook(site, "v2")))
    assert f"db.sqlite3: moved from the live release {v1}" in out and f"media/: moved from the live release {v1}" in out
    v2 = current(site)
    for name in (v1, v2):
        assert os.readlink(site.site / "releases" / name / "db.sqlite3") == "../../shared/db.sqlite3"
        assert os.readlink(site.site / "releases" / name / "media") == "../../shared/media"
    assert rows(site) == ["v1", "v1"]  # the WAL's rows moved with the database
    assert visit(site) == "v2 rows=3 uploads=3"
    assert "data-in-release" not in ok(wsgi_shim("check", str(site.site)))

    # The developer's own database in SOURCE never replaces the site's.
    dev_db = site.site.parent / "devdb.sqlite3"
    with sqlite3.connect(dev_db) as db:
        db.execute("create table visits (n integer primary key, version text)")
    out = ok(deploy(site, _with_file(guestbook(site, "v3"), "db.sqlite3", dev_db.read_bytes())))
    assert "the release's own db.sqlite3 (from SOURCE) is not used" in out
    assert visit(site) == "v3 rows=4 uploads=4"

    out = ok(wsgi_shim("rollback", str(site.site)))
    assert current(site) == v2 and visit(site) == "v2 rows=5 uploads=5"
    out = ok(wsgi_shim("rollback", str(site.site), "--to", v1))
    assert visit(site) == "v1 rows=6 uploads=6"
    ok(deploy(site, guestbook(site, "v4"), "--keep", "1"))
    assert len(releases(site)) == 2 and v2 not in releases(site)  # pruned; v1 was the previous one
    assert visit(site) == "v4 rows=7 uploads=7"
    assert rows(site) == ["v1", "v1", "v2", "v3", "v2", "v1", "v4"]


def _with_file(src: Path, name: str, data: bytes) -> Path:
    (src / name).write_bytes(data)
    os.chown(src / name, (src / "app.py").stat().st_uid, (src / "app.py").stat().st_gid)
    return src


def test_rollback_to_a_release_older_than_sharing_keeps_the_shared_data_and_its_copy():
    site = first_live_site("shared-old")
    v1 = current(site)
    ok(deploy(site, guestbook(site, "v2")))  # not yet shared: v2 starts with an empty database
    v2 = current(site)
    assert visit(site) == "v2 rows=1 uploads=1"
    update_config(site, {"deploy": {"shared": ["db.sqlite3", "media/"]}})
    out = ok(wsgi_shim("rollback", str(site.site), "--to", v1))
    # The live release's data (v2's) became the shared data; v1's own copy was put aside.
    assert f"moved from the live release {v2}" in out
    aside = site.site / "shared/.unshared" / v1 / "db.sqlite3"
    assert f"release {v1}'s own db.sqlite3 was put aside to {aside}" in out and aside.is_file()
    assert visit(site) == "v1 rows=2 uploads=2"


def test_a_new_directory_is_created_and_a_missing_file_is_made_by_the_app():
    site = make_site("shared-new", config=NO_CHECK_REQUESTS)
    update_config(site, {"deploy": {"shared": ["db.sqlite3", "media/", "instance/"]}})
    out = ok(deploy(site, guestbook(site, "v1"), "--init"))
    assert "instance/: " in out and "created empty" in out
    assert "does not exist yet; the app creates it through the link" in out
    assert (site.site / "shared/instance").is_dir() and not (site.site / "shared/db.sqlite3").exists()
    assert visit(site) == "v1 rows=1 uploads=1"
    assert rows(site) == ["v1"]
    listing = ok(wsgi_shim("releases", str(site.site)))
    assert f"shared, in {site.site}/shared and linked into every release: db.sqlite3, media/, instance/" in listing


def test_a_shared_entry_that_does_not_fit_stops_the_deploy_before_anything_moves():
    site = first_live_site("shared-bad")
    v1 = current(site)
    update_config(site, {"deploy": {"shared": ["db.sqlite3/"]}})  # a file, named as a directory
    bad = deploy(site, guestbook(site, "v2"))
    assert bad.returncode == 1 and 'write it as "db.sqlite3"' in bad.stderr and "Nothing was moved" in bad.stderr
    assert current(site) == v1 and not (site.site / "shared/db.sqlite3").exists()
    assert visit(site) == "v1 rows=3 uploads=3"

    update_config(site, {"deploy": {"shared": ["../outside", "/abs", "media/", "media/x"]}})
    check = wsgi_shim("check", str(site.site), "--no-import")
    assert check.returncode == 0 and "config-bad-value" in check.stdout and "no '..'" in check.stdout
    assert "is an absolute path" in check.stdout and "'media/x' lies inside or around another" in check.stdout
    assert visit(site) == "v1 rows=4 uploads=4"  # a deploy-only mistake does not take the site down
    refused = deploy(site, guestbook(site, "v2"))
    assert refused.returncode == 1 and "[deploy] section has 3 problems" in refused.stderr
    assert current(site) == v1 and not (site.site / "shared/media").exists()

    # Data in both places: the deploy will not choose.
    update_config(site, {"deploy": {"shared": ["db.sqlite3"]}})
    (site.site / "shared").mkdir(mode=0o700, exist_ok=True)
    os.chown(site.site / "shared", site.approot.stat().st_uid, site.approot.stat().st_gid)
    write_file(site.site / "shared/db.sqlite3", "")
    both = deploy(site, guestbook(site, "v3"))
    assert both.returncode == 1 and "will not choose which data the site keeps" in both.stderr
    assert current(site) == v1 and visit(site) == "v1 rows=5 uploads=5"


STEPS = ["Linking the shared paths", "moved from the live release", "Compiling the release",
         "Checking release", "Switching", "Restart requested"]


@pytest.mark.parametrize("marker", STEPS)
def test_a_sigkill_at_any_step_loses_no_row(marker):
    site = first_live_site("shared-kill")
    update_config(site, {"deploy": {"shared": ["db.sqlite3", "media/"]}})
    flags = ("--wait", "60", "--url", "http://127.0.0.1:9/")  # waits after the switch, unanswered
    proc = _deploy_until(site, guestbook(site, "v2"), marker, *flags)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    served = visit(site)  # whatever is live now still has every row
    assert served.endswith("rows=3 uploads=3"), served
    ok(wsgi_shim("status", str(site.site)))  # repairs the journal
    ok(deploy(site, guestbook(site, "v3")))
    assert visit(site) == "v3 rows=4 uploads=4"
    assert rows(site)[:3] == ["v1", "v1", served.split()[0]]


def test_a_move_killed_half_way_is_finished_by_the_next_deploy():
    """The two states a kill inside the move can leave (simulated exactly): the link made at the
    target but not yet exchanged; the database's -wal moved but not the database."""
    site = first_live_site("shared-halfway")
    v1 = current(site)
    release = site.site / "releases" / v1
    shared = site.site / "shared"
    shared.mkdir(mode=0o700)
    os.chown(shared, release.stat().st_uid, release.stat().st_gid)
    os.symlink("../../shared/media", shared / "media")  # state 1 for media/
    os.lchown(shared / "media", release.stat().st_uid, release.stat().st_gid)
    if (release / "db.sqlite3-wal").exists():  # state 2 for the database
        os.rename(release / "db.sqlite3-wal", shared / "db.sqlite3-wal")
        os.symlink("../../shared/db.sqlite3-wal", release / "db.sqlite3-wal")
    assert visit(site) == "v1 rows=3 uploads=3"
    update_config(site, {"deploy": {"shared": ["db.sqlite3", "media/"]}})
    ok(deploy(site, guestbook(site, "v2")))
    assert visit(site) == "v2 rows=4 uploads=4"
    assert rows(site) == ["v1", "v1", "v1", "v2"]
