"""Issue 9, found by attacking the site: secrets masked in every form everywhere, one log entry is
one entry, who owns the directories on the way, no hang on a FIFO or a device, and the smaller
points (a private file as the maintenance page, backups bound, BOM, deep nesting).

Every test works at the real boundary: sites made by `wsgi-shim install` as the non-root site
user, passenger_wsgi.py loaded as Passenger loads it, the CLI run as a subprocess.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import OTHER_USER, TEAM_USER, ensure_team_member, gid, uid
from tests.support.sites import (
    BASE,
    VENV,
    load_like_passenger,
    make_site,
    run_as_site,
    small_venv,
    update_config,
    write_file,
    wsgi_shim,
)

pytestmark = pytest.mark.realserver

OWNER = {"path": "/"}  # from 127.0.0.1: opted in by debug_addresses below, sees every detail
OWNER_CONFIG = {"logging": {"debug_addresses": ["127.0.0.1"]}}
QUICK = 90  # seconds: a command that takes longer than this hangs


def all_logs(site: Site) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(site.default_logs.iterdir())
                   if p.is_file() and not p.name.endswith(".lock"))


def no_traceback(proc) -> None:
    """No raw traceback of wsgi-shim itself (`logs` may print the app's, from the log)."""
    assert "Traceback" not in proc.stderr, proc.stderr


# -- one redactor, one parse of debug_addresses (issue 7 point 3) -----------------------------

COUNTING_LOADER = r"""
import ipaddress, json, os, sys
out = os.fdopen(os.dup(1), "w")
import shim.runtime.redact as redact
counts = {"redactors": 0, "address_parses": 0}
init = redact.Redactor.__init__
def counting_init(self, *a, **k):
    counts["redactors"] += 1
    init(self, *a, **k)
redact.Redactor.__init__ = counting_init
parse = ipaddress.ip_network
def counting_parse(*a, **k):
    counts["address_parses"] += 1
    return parse(*a, **k)
ipaddress.ip_network = counting_parse
from shim.ops import passenger_loader
module = passenger_loader.start(sys.argv[1])
counts["served_by_middleware"] = type(module.application).__name__
out.write(json.dumps(counts))
"""


def test_one_redactor_per_process_and_debug_addresses_parsed_once():
    site = make_site("once", config={"logging": {"debug_addresses": ["127.0.0.1", "10.0.0.0/8"]}})
    write_file(site.site / "secret.txt", "a-file-secret-value-1\n", 0o600)
    update_config(site, {"secret_files": {"SECRET_FILE": str(site.site / "secret.txt")}})
    script = Path(tempfile.mkdtemp(dir=BASE)) / "count.py"
    script.parent.chmod(0o755)
    script.write_text(COUNTING_LOADER)
    script.chmod(0o644)
    proc = run_as_site([str(VENV / "bin/python"), str(script), str(site.approot)], cwd=site.approot,
                       timeout=QUICK)
    counts = json.loads(proc.stdout)
    assert counts["served_by_middleware"] == "CatchErrors"  # the app log and the middleware are on
    assert counts["redactors"] == 1, counts
    assert counts["address_parses"] == 2, counts  # two entries, each parsed once


# -- masking that holds (issue 9 point 2) --------------------------------------------------------

BACKSLASH_SECRET = "S3cr3t\\Pa55word!"
PRIVATE_KEY_LINES = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
                     "VJTUt9Us8cKjMzEfYyjiWA4R4ypbHhaGjiRkxNjI5qBw4Tz"]
SERVICE_ACCOUNT = {"type": "service_account", "private_key_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                   "private_key": "-----BEGIN PRIVATE KEY-----\n" + "\n".join(PRIVATE_KEY_LINES)
                   + "\n-----END PRIVATE KEY-----\n",
                   "client_email": "site@project.iam.gserviceaccount.com"}
ENV_FILE = "SMTP_HOST=mail.example.org\nMAIL_PASSWORD='env-file-pw-4471x'\n"
ENVIRONMENT = {"DB_PASS": "db-pass-Qw8822", "SMTP_PASS": "smtp-pass-Lk2231",
               "STRIPE_SK": "sk_live_51Hx9zzAbCdEf"}
SECRETS = [BACKSLASH_SECRET, SERVICE_ACCOUNT["private_key_id"], *PRIVATE_KEY_LINES,
           "env-file-pw-4471x", *ENVIRONMENT.values()]

LEAKY_APP = r'''
import base64, json, os, sys, urllib.parse

def _read(var):
    with open(os.environ[var]) as f:
        return f.read()

BACKSLASH = _read("BACKSLASH_FILE").strip()
SERVICE = json.loads(_read("SERVICE_FILE"))
MAILPW = [line.split("=", 1)[1].strip("'") for line in _read("ENV_FILE").splitlines()
          if line.startswith("MAIL_PASSWORD")][0]
VALUES = [BACKSLASH, SERVICE["private_key_id"], MAILPW] + [os.environ[k] for k in
                                                           ("DB_PASS", "SMTP_PASS", "STRIPE_SK")]
print("environ:", dict(os.environ))
print("repr:", repr(BACKSLASH), repr(VALUES))
print("json:", json.dumps({"pw": BACKSLASH, "values": VALUES}))
print("url:", "&".join("v=" + urllib.parse.quote(v, safe="") for v in VALUES))
print("b64:", " ".join(base64.b64encode(v.encode()).decode() for v in VALUES))
print("basic:", base64.b64encode(("alice:" + os.environ["DB_PASS"]).encode()).decode())
print("key:", SERVICE["private_key"])
sys.stderr.write("stderr %r\n" % (VALUES,))
FAIL_AT_IMPORT = False
if FAIL_AT_IMPORT:
    raise ValueError("cannot connect with %r %s" % (VALUES, json.dumps(VALUES)))

def application(environ, start_response):
    raise RuntimeError("request failed with %r %s" % (VALUES, json.dumps(VALUES)))
'''


def forms(value: str) -> set[str]:
    return {value, repr(value)[1:-1], json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
            base64.b64encode(value.encode()).decode()}


def assert_masked(text: str, where: str) -> None:
    for secret in SECRETS:
        for form in forms(secret):
            assert form not in text, f"{form!r} (a form of a secret) leaked into {where}"
            assert form not in html.unescape(text), f"{form!r} leaked into {where} (HTML)"
    basic = base64.b64encode(("alice:" + ENVIRONMENT["DB_PASS"]).encode()).decode()
    assert basic not in text, f"a Basic credential holding a secret leaked into {where}"


def leaky_site() -> Site:
    site = make_site("mask", config=OWNER_CONFIG, app_source={"app.py": LEAKY_APP})
    secrets = site.site / "secrets"
    write_file(secrets / "backslash.txt", BACKSLASH_SECRET + "\n", 0o600)
    write_file(secrets / "service.json", json.dumps(SERVICE_ACCOUNT, indent=2), 0o600)
    write_file(secrets / "app.env", ENV_FILE, 0o600)
    update_config(site, {"secret_files": {"BACKSLASH_FILE": str(secrets / "backslash.txt"),
                                          "SERVICE_FILE": str(secrets / "service.json"),
                                          "ENV_FILE": str(secrets / "app.env")},
                         "environment": ENVIRONMENT})
    return site


def test_secrets_are_masked_in_every_form_on_pages_logs_records_and_commands():
    site = leaky_site()
    # The app imports (printing everything) and fails on a request: the owner's detailed page.
    page = load_like_passenger(site, [OWNER]).response
    assert page.code == 500 and "RuntimeError" in page.body, page.body
    assert "[redacted]" in page.body
    assert_masked(page.body, "the opted-in request error page")
    log = all_logs(site)
    assert "environ:" in log and "key:" in log and "[redacted]" in log
    assert "'PATH': '/usr/local/bin:/usr/bin:/bin'" in log  # what is not secret stays readable
    for args in (["logs"], ["logs", "--errors"], ["status"], ["status", "--json"]):
        out = wsgi_shim(*args, str(site.site), timeout=QUICK)
        no_traceback(out)
        assert_masked(out.stdout + out.stderr, f"`wsgi-shim {' '.join(args)}`")
    # Now the import fails: the start-up page, the start record, check.
    write_file(site.approot / "app.py", LEAKY_APP.replace("FAIL_AT_IMPORT = False", "FAIL_AT_IMPORT = True"))
    page = load_like_passenger(site, [OWNER]).response
    assert "[app-exception]" in page.body and "ValueError" in page.body, page.body
    assert_masked(page.body, "the opted-in start-up error page")
    assert_masked(all_logs(site), "the app log")
    for args in (["check"], ["check", "--json"], ["status", "--json"], ["logs", "--errors"]):
        out = wsgi_shim(*args, str(site.site), timeout=600)
        no_traceback(out)
        assert_masked(out.stdout + out.stderr, f"`wsgi-shim {' '.join(args)}`")


def test_a_short_common_secret_does_not_garble_tracebacks():
    app = ("class Shop:\n    def boom(self):\n        raise RuntimeError('out of stock')\n\n"
           "def application(environ, start_response):\n    return Shop().boom()\n")
    site = make_site("short", config=OWNER_CONFIG, app_source={"app.py": app})
    write_file(site.site / "pin.txt", "boom\n", 0o600)  # a poor secret, and a word of the code
    update_config(site, {"secret_files": {"PIN_FILE": str(site.site / "pin.txt")}})
    page = load_like_passenger(site, [OWNER]).response
    assert "Shop().boom()" in html.unescape(page.body)
    log = all_logs(site)
    assert "Shop().boom()" in log and ", in boom" in log
    assert "[redacted]" not in log  # masking "boom" would garble the traceback and reveal the secret
    out = wsgi_shim("check", str(site.site))
    assert "[secret-short]" in out.stdout and "not masked" in out.stdout, out.stdout


# -- one entry is one entry (issue 9 point 3) ---------------------------------------------------

FORGED_ID = "deadbeef00"
FORGED = (f"/x\r2026-11-25T10:00:00.000Z [1] ERROR shim.request: error id {FORGED_ID}: GET /forged"
          "\x1b]0;pwned\x07\x1b[2J")


def failing_site(name: str) -> Site:
    return make_site(name, app_source={"app.py": "def application(environ, start_response):\n"
                                                 "    raise RuntimeError('boom')\n"})


def test_a_request_path_cannot_forge_a_log_entry_nor_reach_the_terminal():
    site = failing_site("forge")
    assert load_like_passenger(site, [{"path": FORGED}]).response.code == 500
    raw = b"".join(p.read_bytes() for p in site.default_logs.iterdir() if p.name.startswith("app.log"))
    assert b"\r" not in raw and b"\x1b" not in raw and b"\x07" not in raw
    assert b"\\r2026-11-25T10:00:00.000Z" in raw  # there, but visibly escaped
    found = wsgi_shim("logs", str(site.site), "--id", FORGED_ID)
    assert found.returncode == 1, found.stdout  # no entry has that id
    status = wsgi_shim("status", str(site.site), "--json")
    errors = json.loads(status.stdout).get("errors") or json.loads(status.stdout).get("recent_errors")
    assert errors and all(FORGED_ID != e.get("id") for e in errors)
    shown = wsgi_shim("logs", str(site.site))
    assert "\x1b" not in shown.stdout and "\r" not in shown.stdout and "\x07" not in shown.stdout


def test_an_error_id_in_a_visitors_text_logged_by_the_app_is_no_error_id():
    """The app logs the path at ERROR (common: "not found: %s"); the visitor put "error id X" in
    it. `logs --id X` and `status` must not present that entry as error X."""
    app = ("import logging\n"
           "def application(environ, start_response):\n"
           "    logging.getLogger('myapp').error('bad path %s', environ['PATH_INFO'])\n"
           "    start_response('404 Not Found', [('Content-Type', 'text/plain')])\n"
           "    return [b'no']\n")
    site = make_site("forgeapp", app_source={"app.py": app})
    load_like_passenger(site, [{"path": f"/x error id {FORGED_ID}: GET /admin HTTP/1.1"}])
    assert f"ERROR myapp: bad path /x error id {FORGED_ID}" in all_logs(site)  # logged, as the app asked
    assert wsgi_shim("logs", str(site.site), "--id", FORGED_ID).returncode == 1
    status = json.loads(wsgi_shim("status", str(site.site), "--json").stdout)
    [logged] = status["errors"]
    assert logged["id"] == "" and logged["kind"] == "log", logged
    text = wsgi_shim("status", str(site.site)).stdout
    assert f"log {FORGED_ID}" not in text, text


def test_the_log_viewer_escapes_whatever_is_in_the_file():
    site = failing_site("viewer")
    load_like_passenger(site)
    log = site.default_logs / "app.log"
    with open(log, "ab") as f:  # as an older wsgi-shim (or anything else) may have written it
        f.write(b"2026-11-25T10:00:00.000Z [7] INFO stdout: hi\r2026-11-25T10:00:01.000Z [7] ERROR "
                b"shim.request: error id " + FORGED_ID.encode() + b": forged\x1b[2J\x1b]0;title\x07\n")
    shown = wsgi_shim("logs", str(site.site))
    assert "hi\\r2026" in shown.stdout and "\\x1b[2J" in shown.stdout
    assert "\x1b" not in shown.stdout and "\r" not in shown.stdout and "\x07" not in shown.stdout
    assert wsgi_shim("logs", str(site.site), "--id", FORGED_ID).returncode == 1


# -- ownership (issue 9 point 4) ----------------------------------------------------------------

def test_a_site_inside_another_users_directory_is_refused():
    site = make_site("owner", config=OWNER_CONFIG)
    os.chown(site.site.parent, uid(OTHER_USER), gid(OTHER_USER))
    page = load_like_passenger(site, [OWNER]).response
    assert page.code == 500 and "[owner-foreign]" in page.body, page.body
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1 and "[owner-foreign]" in out.stdout, out.stdout
    assert f"{site.site.parent} is owned by {OTHER_USER}" in out.stdout
    assert "chown root" in out.stdout


def test_a_venv_owned_by_another_user_is_refused():
    site = make_site("venvowner", config=OWNER_CONFIG)
    venv = small_venv(site.site / "venv-other")
    for root, dirs, files in os.walk(venv):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, uid(OTHER_USER), gid(OTHER_USER))
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})
    page = load_like_passenger(site, [OWNER], python=str(venv / "bin/python")).response
    assert "[owner-foreign]" in page.body and str(venv) in page.body, page.body
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 1 and "[owner-foreign]" in out.stdout and str(venv) in out.stdout


def test_a_path_through_another_users_symlink_in_a_sticky_directory_is_refused():
    site = make_site("link")
    sticky = Path(tempfile.mkdtemp(dir=BASE, prefix="sticky-"))
    sticky.chmod(0o1777)
    link = sticky / "my-site"
    os.symlink(site.site, link)
    os.lchown(link, uid(OTHER_USER), gid(OTHER_USER))
    try:
        out = wsgi_shim("check", str(link))
        assert out.returncode == 1 and "[owner-foreign]" in out.stdout, out.stdout
        assert f"{link} is owned by {OTHER_USER}" in out.stdout
    finally:
        shutil.rmtree(sticky)


def test_a_project_directory_owned_by_a_group_member_is_a_warning():
    ensure_team_member()
    site = make_site("team")
    os.chown(site.site.parent, uid(TEAM_USER), gid())
    assert load_like_passenger(site).response.body == "hello from the app"
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 0, out.stdout
    assert "warning: [owner-group-member]" in out.stdout and TEAM_USER in out.stdout


# -- nothing hangs, nothing unbounded (issue 9 point 5) ----------------------------------------

def fifo(path: Path) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path, 0o600)
    os.chown(path, uid(), gid())


def test_a_fifo_config_toml_hangs_nothing():
    site = make_site("fifocfg")
    fifo(site.config_toml)
    page = load_like_passenger(site).response  # returns: the harness has a 120 s limit
    assert page.code == 500 and page.kind == "error"
    out = wsgi_shim("check", str(site.site), timeout=QUICK)
    assert "[config-not-file]" in out.stdout and "FIFO" in out.stdout, out.stdout
    for args in (["status"], ["logs"], ["restart"], ["status", "--json"]):
        no_traceback(wsgi_shim(*args, str(site.site), timeout=QUICK))


def test_a_fifo_secret_file_hangs_nothing():
    site = make_site("fifosecret", config=OWNER_CONFIG)
    fifo(site.site / "secret")
    update_config(site, {"secret_files": {"SECRET_FILE": str(site.site / "secret")}})
    page = load_like_passenger(site, [OWNER]).response
    assert "[secret-not-file]" in page.body and "FIFO" in page.body
    out = wsgi_shim("check", str(site.site), timeout=QUICK)
    assert "[secret-not-file]" in out.stdout and "FIFO" in out.stdout


@pytest.mark.parametrize("target", ["fifo", "/dev/zero"])
def test_the_maintenance_page_is_never_a_fifo_or_a_device(target):
    site = make_site("maintpage", maint=True)
    page_path = site.approot / "maint.html"
    if target == "fifo":
        fifo(page_path)
    else:
        os.symlink(target, page_path)
        os.lchown(page_path, uid(), gid())
    update_config(site, {"maintenance": {"page": "maint.html"}})
    page = load_like_passenger(site).response
    assert page.code == 503 and page.kind == "maintenance", page
    out = wsgi_shim("check", str(site.site), timeout=QUICK)
    assert "[maint-page-unreadable]" in out.stdout
    assert ("FIFO" if target == "fifo" else "character device") in out.stdout, out.stdout


def test_fifo_token_file_app_log_and_start_records_hang_nothing():
    site = make_site("fifolog", config={"logging": {"debug_token_file": "/tmp/placeholder"}})
    token = site.site / "token"
    fifo(token)
    update_config(site, {"logging": {"debug_token_file": str(token)}})
    if not site.default_logs.exists():
        site.default_logs.mkdir(mode=0o700)
        os.chown(site.default_logs, uid(), gid())
    fifo(site.default_logs / "app.log")
    fifo(site.default_logs / "starts.jsonl")
    assert load_like_passenger(site).response.body == "hello from the app"
    logs = wsgi_shim("logs", str(site.site), timeout=QUICK)
    no_traceback(logs)
    assert logs.returncode == 1 and "FIFO" in logs.stderr, logs.stderr
    for args in (["status"], ["status", "--json"], ["check"], ["logs", "--errors"]):
        no_traceback(wsgi_shim(*args, str(site.site), timeout=QUICK))
    check = wsgi_shim("check", str(site.site), timeout=QUICK)
    for name in ("app.log", "starts.jsonl"):
        assert f"[log-not-file] {site.default_logs / name} is a FIFO (named pipe)" in check.stdout, check.stdout
    assert f"[debug-token-unusable] [logging] debug_token_file {token} cannot be read (is a FIFO" \
        in check.stdout, check.stdout
    # status names the FIFO instead of a bare "none recorded (no request since install?)"
    status = wsgi_shim("status", str(site.site), timeout=QUICK)
    assert f"{site.default_logs / 'starts.jsonl'} is a FIFO (named pipe)" in status.stderr, status.stderr


def test_check_names_a_debug_token_file_readable_by_everyone():
    site = make_site("tokenmode")
    token = site.site / "token"
    write_file(token, "a-debug-token-long-enough-0123456789\n", 0o644)
    update_config(site, {"logging": {"debug_token_file": str(token)}})
    out = wsgi_shim("check", str(site.site))
    assert out.returncode == 0, out.stdout  # a warning: the site starts, without the token
    assert f"[debug-token-unusable] [logging] debug_token_file {token} is readable by everyone" in out.stdout
    token.chmod(0o600)
    assert "debug-token-unusable" not in wsgi_shim("check", str(site.site)).stdout


# -- the smaller points (issue 9 point 10) -------------------------------------------------------

@pytest.mark.parametrize("private", ["config.toml", "secret", "hard link to the secret"])
def test_the_maintenance_page_may_not_be_a_private_file(private):
    site = make_site("maintpriv", maint=True)
    write_file(site.site / "secret.txt", "maint-page-secret-42\n", 0o600)
    update_config(site, {"secret_files": {"SECRET_FILE": str(site.site / "secret.txt")}})
    page = "config.toml" if private == "config.toml" else str(site.site / "secret.txt")
    if private.startswith("hard link"):  # a path of its own, the same file
        os.link(site.site / "secret.txt", site.approot / "maint.html")
        page = "maint.html"
    update_config(site, {"maintenance": {"page": page}})
    body = load_like_passenger(site).response.body
    assert "passenger_user" not in body and "maint-page-secret-42" not in body
    out = wsgi_shim("check", str(site.site))
    assert "[maint-page-private]" in out.stdout, out.stdout


def test_backups_have_an_upper_bound():
    site = make_site("backups")
    update_config(site, {"logging": {"backups": 1000000}})
    out = wsgi_shim("check", str(site.site))
    assert "[config-bad-value]" in out.stdout and "backups must be at most 100" in out.stdout


def test_a_bom_is_named():
    site = make_site("bom")
    site.config_toml.write_bytes(b"\xef\xbb\xbf" + site.config_toml.read_bytes())
    out = wsgi_shim("check", str(site.site))
    assert "[config-bom]" in out.stdout and "byte order mark" in out.stdout, out.stdout


def test_deep_nesting_is_a_syntax_problem_everywhere():
    site = make_site("nest")
    write_file(site.config_toml, "a = " + "[" * 5000 + "\n", 0o600)
    page = load_like_passenger(site).response
    assert page.code == 500 and page.kind == "error"
    records = [json.loads(line) for line in (site.default_logs / "starts.jsonl").read_text().splitlines()]
    assert [p["code"] for p in records[-1]["problems"]] == ["config-syntax"]
    out = wsgi_shim("check", str(site.site), timeout=QUICK)
    assert "[config-syntax]" in out.stdout and "nested too deeply" in out.stdout, out.stdout
    for args in (["status"], ["status", "--json"], ["logs"], ["restart"]):
        no_traceback(wsgi_shim(*args, str(site.site), timeout=QUICK))


def test_check_names_a_fifo_startup_file_and_does_not_read_it():
    site = make_site("fifowsgi")
    fifo(site.passenger_wsgi)
    out = wsgi_shim("check", str(site.site), timeout=QUICK)
    assert "[wsgi-file-missing]" in out.stdout and "FIFO" in out.stdout, out.stdout


def test_check_never_prints_raw_escape_sequences_from_config_toml():
    site = make_site("esckey")
    write_file(site.config_toml, site.config_toml.read_text()
               + '\n[wsgi_x]\n"\\u001b]0;pwned\\u0007\\u001b[2J" = 1\n', 0o600)
    out = wsgi_shim("check", str(site.site))
    assert "[config-unknown-section]" in out.stdout, out.stdout
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    status = wsgi_shim("status", str(site.site))
    assert "\x1b" not in status.stdout + status.stderr
