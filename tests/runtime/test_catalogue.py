"""The catalogue of realistic mistakes: for each, the page Passenger would serve and
`wsgi-shim check` both name the cause.

Every case starts from a healthy site made by `wsgi-shim install` as the non-root site user,
breaks one thing the way people do, then (1) loads passenger_wsgi.py in a fresh process as
Passenger 6 does, as that user and the project group, and requests "/", and (2) runs
`wsgi-shim check` as a subprocess, as the same user.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.runtime.layout import Site
from tests.support.accounts import OTHER_USER, SITE_USER
from tests.support.sites import (
    HELLO_APP,
    VENV,
    load_like_passenger,
    make_site,
    small_venv,
    update_config,
    write_file,
    wsgi_shim,
)

pytestmark = pytest.mark.realserver


@dataclass
class Mistake:
    name: str
    breaks: Callable[[Site], None]
    page: str | None          # problem code on the error page (None: Passenger never reaches us)
    check: str | None         # problem code `wsgi-shim check` reports (None: only the process sees it)
    says: str = ""            # a phrase the page must contain


def cfg(changes=None, remove=()):
    return lambda site: update_config(site, changes, list(remove))


def text_config(text: str):
    return lambda site: write_file(site.config_toml, text, 0o600)


def app_file(text: str, name: str = "app.py", mode: int = 0o640):
    return lambda site: write_file(site.approot / name, text, mode)


def secret(content: str | None, mode: int = 0o600, kind: str = "file", relative: bool = False):
    def breaks(site: Site) -> None:
        path = site.site / "secrets" / "db_password"
        if kind == "file" and content is not None:
            write_file(path, content, mode)
        elif kind == "dir":
            path.mkdir(parents=True)
        elif kind == "root-owned":
            write_file(path, content or "x", 0o600)
            os.chown(path, 0, 0)
        os.chown(path.parent, *(os.stat(site.site)[4:6])) if path.parent.exists() else None
        update_config(site, {"secret_files": {"DB_PASSWORD_FILE": "secrets/db_password" if relative
                                              else str(path)}})
    return breaks


def chmod(rel: str, mode: int):
    return lambda site: (site.approot / rel).chmod(mode)


def other_venv_inside(site: Site) -> None:
    venv = small_venv(site.approot / "venv")
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})


def settings_site(site: Site, settings: str, extra: str = "") -> None:
    """A package of the app's own (mysite/settings.py, helpers.py) whose settings module
    [environment] names, imported the way Django imports DJANGO_SETTINGS_MODULE."""
    write_file(site.approot / "mysite/__init__.py", "")
    write_file(site.approot / "mysite/settings.py", "DEBUG = False\n")
    write_file(site.approot / "mysite/helpers.py", "")
    write_file(site.approot / "app.py", "import importlib, os\n" + extra
               + "importlib.import_module(os.environ['APP_SETTINGS'])\n" + HELLO_APP)
    update_config(site, {"environment": {"APP_SETTINGS": settings}})


def other_venv_writable(site: Site) -> None:
    venv = small_venv(site.site / "venv2")
    venv.chmod(0o777)
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})


CATALOGUE = [
    # config.toml itself
    Mistake("config deleted", lambda s: s.config_toml.unlink(), "config-missing", "config-missing"),
    Mistake("config unquoted string", text_config('[passenger]\npassenger_user = shimsite\n'),
            "config-syntax", "config-syntax", "line 2"),
    Mistake("config missing bracket", text_config('[passenger\npassenger_user = "x"\n'),
            "config-syntax", "config-syntax"),
    Mistake("config saved as Latin-1", lambda s: s.config_toml.write_bytes(
        s.config_toml.read_bytes() + '\n[environment]\nCITY = "Zürich"\n'.encode("latin-1")),
        "config-encoding", "config-encoding"),
    Mistake("section name typo", lambda s: s.config_toml.write_text(
        s.config_toml.read_text().replace("[wsgi]", "[wgsi]")), "config-unknown-section",
        "config-unknown-section", "Did you mean &#x27;wsgi&#x27;?"),
    Mistake("key name typo", lambda s: s.config_toml.write_text(
        s.config_toml.read_text().replace('app = "app.application"', 'ap = "app.application"')),
        "config-unknown-key", "config-unknown-key", "Did you mean &#x27;app&#x27;?"),
    Mistake("key in wrong section", cfg({"passenger": {"chdir": "."}}), "config-unknown-key",
            "config-unknown-key", "belongs in section [wsgi]"),
    Mistake("number instead of string", cfg({"wsgi": {"chdir": 1}}), "config-wrong-type", "config-wrong-type"),
    Mistake("section written as key", lambda s: s.config_toml.write_text(
        'wsgi = "app.application"\n' + s.config_toml.read_text().replace("[wsgi]", "[wsgi_old]")),
        "config-not-a-section", "config-not-a-section"),
    Mistake("passenger_python missing", cfg(remove=[("passenger", "passenger_python")]),
            "config-missing-key", "config-missing-key"),
    Mistake("passenger_python relative", cfg({"passenger": {"passenger_python": "venv/bin/python"}}),
            "config-python-relative", "config-python-relative"),
    Mistake("app given as a file path", cfg({"wsgi": {"app": "mysite/wsgi.py"}}),
            "config-app-format", "config-app-format"),
    Mistake("app without module", cfg({"wsgi": {"app": "application"}}),
            "config-app-format", "config-app-format"),
    Mistake("env name with dash", cfg({"environment": {"MY-SETTING": "1"}}), "config-env-name",
            "config-env-name"),
    Mistake("env set twice", cfg({"environment": {"TOKEN_FILE": "x"},
                                  "secret_files": {"TOKEN_FILE": "/etc/hostname"}}),
            "config-env-duplicate", "config-env-duplicate"),
    Mistake("bad log level", cfg({"logging": {"level": "verbose"}}), "config-bad-value", "config-bad-value"),
    Mistake("config world-readable", lambda s: s.config_toml.chmod(0o644), "config-exposed", "config-exposed"),
    # venv and identity
    Mistake("passenger_python is the system python",
            cfg({"passenger": {"passenger_python": "/usr/bin/python3"}}), "venv-mismatch", "venv-none"),
    Mistake("venv inside the app root", other_venv_inside, "venv-inside-approot", "venv-inside-approot",
            "Recreate the venv next to the app root"),
    Mistake("venv writable by everyone", other_venv_writable, "venv-writable", "venv-writable"),
    Mistake("wrong passenger_user", cfg({"passenger": {"passenger_user": OTHER_USER}}),
            "user-mismatch", "user-mismatch"),
    Mistake("wrong passenger_group", cfg({"passenger": {"passenger_group": SITE_USER}}),
            "group-mismatch", "group-mismatch"),
    Mistake("passenger_user misspelt", cfg({"passenger": {"passenger_user": "shimsit"}}),
            "user-mismatch", "user-unknown"),
    Mistake("passenger_group misspelt", cfg({"passenger": {"passenger_group": "shimprj"}}),
            "group-mismatch", "group-unknown"),
    Mistake("app root moved", cfg({"passenger": {"passenger_app_root": "/srv/old-site/www-approot"}}),
            "approot-mismatch", "approot-mismatch"),
    Mistake("environment overrides the login shell's", cfg({"environment": {"HOME": "/nowhere"}}),
            "env-conflict", "env-conflict"),
    # secrets
    Mistake("secret path relative", secret("s3cret-value", relative=True), "secret-relative", "secret-relative"),
    Mistake("secret file missing", secret(None), "secret-missing", "secret-missing"),
    Mistake("secret world-readable", secret("s3cret-value", 0o644), "secret-exposed", "secret-exposed"),
    Mistake("secret is a directory", secret(None, kind="dir"), "secret-not-file", "secret-not-file"),
    Mistake("secret owned by root", secret("s3cret-value", kind="root-owned"), "secret-unreadable",
            "secret-unreadable"),
    # chdir
    Mistake("chdir missing", cfg({"wsgi": {"chdir": "src"}}), "chdir-missing", "chdir-missing"),
    Mistake("chdir is a file", cfg({"wsgi": {"chdir": "app.py"}}), "chdir-not-dir", "chdir-not-dir"),
    # who else can change what the site runs, serves or records (issue 19.1)
    Mistake("app root writable by everyone", lambda s: s.approot.chmod(0o777), "approot-writable",
            "approot-writable"),
    Mistake("log directory writable by everyone", lambda s: (s.approot / "logs").chmod(0o777),
            "path-writable", "path-writable", "the app log"),
    Mistake("tmp/ unreadable (mode 000)", chmod("tmp", 0o000), "tmp-unreadable", "tmp-unreadable", "chmod 700"),
    # importing the app
    Mistake("module name typo", cfg({"wsgi": {"app": "ap.application"}}), "app-module-missing",
            "app-module-missing", "Did you mean &#x27;app&#x27;?"),
    Mistake("dependency not installed", app_file("import requests_toolbelt_nope\n"),
            "app-dependency-missing", "app-dependency-missing", "requests_toolbelt_nope"),
    Mistake("syntax error", app_file("def application(environ, start_response)\n    pass\n"),
            "app-syntax-error", "app-syntax-error", "app.py line 1"),
    Mistake("variable exported only in the shell", app_file("import os\nDEBUG = os.environ['DJANGO_DEBUG']\n"),
            "app-env-missing", "app-env-missing", "Passenger starts the app from the web server"),
    Mistake("exception at import", app_file("import os\nDEBUG = int(os.environ.get('DJANGO_DEBUG', 'x'))\n"),
            "app-exception", "app-exception", "ValueError"),
    Mistake("exception inside a library", app_file("import json\nSETTINGS = json.loads('{')\n"),
            "app-exception", "app-exception", "app.py line 2"),
    Mistake("settings module misspelt in [environment]", lambda s: settings_site(s, "mysite.setings"),
            "env-module-missing", "env-module-missing", "Did you mean &#x27;mysite.settings&#x27;?"),
    Mistake("own module misspelt", lambda s: settings_site(s, "mysite.settings", "import mysite.helpres\n"),
            "app-own-module-missing", "app-own-module-missing", "Did you mean &#x27;mysite.helpers&#x27;?"),
    Mistake("attribute typo", cfg({"wsgi": {"app": "app.aplication"}}), "app-attribute-missing",
            "app-attribute-missing", "Did you mean &#x27;application&#x27;?"),
    Mistake("app is not callable", app_file('application = "hello"\n'), "app-not-callable", "app-not-callable"),
    Mistake("sys.exit at import", app_file("import sys\nsys.exit('missing settings')\n"), "app-exit", "app-exit"),
    Mistake("app file unreadable", lambda s: os.chown(s.approot / "app.py", 0, 0) or
            (s.approot / "app.py").chmod(0o600), "app-permission", "app-permission"),
    Mistake("name missing in import", app_file("from os import nonexistent_name\n"), "app-import-error",
            "app-import-error", "nonexistent_name"),
    Mistake("hostile exception text", app_file("raise ValueError('<script>alert(1)</script>')\n"),
            "app-exception", "app-exception", "&lt;script&gt;alert(1)&lt;/script&gt;"),
]


def _venv_python_of(site: Site) -> str | None:
    """Passenger runs the Python that PassengerPython names: a case's own venv, if it made one."""
    import tomllib

    try:
        python = tomllib.loads(site.config_toml.read_text())["passenger"]["passenger_python"]
    except (OSError, ValueError, KeyError):
        return None
    return python if python.startswith(str(site.site)) else None


# Requests from 127.0.0.1 are the owner's (opted in by [logging] debug_addresses, see
# owner_site); any other address is an anonymous visitor, who sees only the plain page.
OWNER = {"path": "/"}
VISITOR = {"path": "/", "remote_addr": "203.0.113.9"}
OWNER_CONFIG = {"logging": {"debug_addresses": ["127.0.0.1"]}}
# config.toml cannot be read: no opt-in is known, so every page is plain; `check` tells the owner.
UNREADABLE = ("config-missing", "config-syntax", "config-encoding")


def owner_site(name: str, **kw) -> Site:
    return make_site(name, config={**OWNER_CONFIG, **kw.pop("config", {})}, **kw)


def assert_plain(page) -> None:
    """What an anonymous visitor may see of a failed start: that it failed, an id, the time."""
    assert page.code == 500 and page.kind == "error", page
    assert 'class="error-id">' in page.body
    for detail in ("How to fix:", "Traceback", "[", "/srv/", "shimsite", "shimproj", "python"):
        assert detail not in page.body.split("<body>", 1)[1], (detail, page.body)


@pytest.mark.parametrize("mistake", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_page_and_check_name_the_cause(mistake: Mistake):
    site = owner_site("cat")
    mistake.breaks(site)

    loaded = load_like_passenger(site, [OWNER, VISITOR], python=_venv_python_of(site))
    page, visitor = loaded.responses
    assert_plain(visitor)
    assert "<script>alert" not in visitor.body
    if mistake.page in UNREADABLE:
        assert_plain(page)  # nobody is opted in without a readable config.toml
    else:
        assert page.code == 500, page
        assert page.kind == "error"
        assert f"[{mistake.page}]" in page.body
        assert "How to fix:" in page.body
        if mistake.says:
            assert mistake.says in page.body
    assert "<script>alert" not in page.body

    checked = wsgi_shim("check", str(site.site))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"[{mistake.check}]" in checked.stdout, checked.stdout
    if mistake.page in UNREADABLE and mistake.says:
        assert mistake.says in checked.stdout, checked.stdout
    assert "Traceback" not in checked.stderr


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 30


def test_every_problem_is_listed_not_just_the_first():
    site = owner_site("many")
    update_config(site, {"wsgi": {"chdir": "missing-dir"}, "environment": {"BAD-NAME": "x"},
                         "passenger": {"passenger_user": OTHER_USER}})
    page = load_like_passenger(site).response
    for code in ("chdir-missing", "config-env-name", "user-mismatch"):
        assert f"[{code}]" in page.body
    assert "found 3 problems" in page.body
    out = wsgi_shim("check", str(site.site)).stdout
    for code in ("chdir-missing", "config-env-name", "user-mismatch"):
        assert f"[{code}]" in out


def test_check_only_mistakes_that_passenger_would_turn_into_its_generic_page():
    site = make_site("gen")
    # passenger_wsgi.py broken: Passenger dies before wsgi-shim runs; check says so.
    write_file(site.passenger_wsgi, "import shim\napplication = shim.get_app(\n", 0o600)
    assert load_like_passenger(site).loader_error is not None
    assert "[wsgi-file-syntax]" in wsgi_shim("check", str(site.site)).stdout
    # PassengerPython without wsgi-shim installed.
    venv = small_venv(site.site / "bare")
    shutil.rmtree(next(venv.glob("lib/python3*/site-packages")) / "shim")
    write_file(site.passenger_wsgi, "import shim\napplication = shim.get_app()\n", 0o600)
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})
    assert "No module named 'shim'" in load_like_passenger(site, python=str(venv / "bin/python")).loader_error
    assert "[shim-not-installed]" in wsgi_shim("check", str(site.site)).stdout
    # The passenger_wsgi.py that install generates says so itself, instead of Passenger's page.
    from shim.ops.install import PASSENGER_WSGI

    write_file(site.passenger_wsgi, PASSENGER_WSGI, 0o600)
    page = load_like_passenger(site, python=str(venv / "bin/python")).response
    assert page.code == 500 and page.kind == "error"
    # Visitors: a plain page with an error id. The owner: the same facts through status/logs --id.
    assert "could not start" in page.body and f"{venv}/bin/python" not in page.body
    assert "shim-not-installed" not in page.body
    error_id = re.search(r"Error id <code>([0-9a-f]{10})</code>", page.body).group(1)
    status = wsgi_shim("status", str(site.site))
    assert "[shim-not-installed]" in status.stdout and f"{venv}/bin/python" in status.stdout
    assert error_id in status.stdout
    by_id = wsgi_shim("logs", str(site.site), "--id", error_id)
    assert by_id.returncode == 0 and f"{venv}/bin/python" in by_id.stdout, by_id
    assert "[shim-not-installed]" in wsgi_shim("check", str(site.site)).stdout


def test_check_sees_what_only_the_shell_sees():
    site = make_site("shell")
    site.passenger_wsgi.chmod(0o644)
    site.docroot.chmod(0o750)
    site.tmp.chmod(0o777)
    out = wsgi_shim("check", str(site.site)).stdout
    assert "[wsgi-file-exposed]" in out
    assert "[docroot-not-searchable]" in out
    assert "[tmp-writable]" in out


def test_healthy_site_serves_the_app_itself_and_check_passes():
    site = make_site("ok", config={"logging": {"catch_errors": False}})
    loaded = load_like_passenger(site)
    assert loaded.response.code == 200
    assert loaded.response.body == "hello from the app"
    assert loaded.response.kind == ""
    checked = wsgi_shim("check", str(site.site))
    assert checked.returncode == 0, checked.stdout
    assert "would serve its app" in checked.stdout


def test_get_app_returns_the_users_callable_itself(tmp_path: Path):
    site = make_site("ident", config={"logging": {"catch_errors": False}}, app_source={
        "app.py": "def application(environ, start_response):\n"
                  "    import passenger_wsgi, sys\n"
                  "    same = passenger_wsgi.application is sys.modules['app'].application\n"
                  "    start_response('200 OK', [])\n"
                  "    return [b'same' if same else b'wrapped']\n"})
    assert load_like_passenger(site).response.body == "same"


def test_failed_start_leaves_no_half_applied_environment():
    site = owner_site("rollback", app_source={"pkg/app.py": "raise RuntimeError('boom')\n"},
                      config={"wsgi": {"chdir": "pkg", "app": "app.application"},
                              "environment": {"SHIM_TEST_SETTING": "on"}})
    loaded = load_like_passenger(site, watch_env=["SHIM_TEST_SETTING"])
    assert "[app-exception]" in loaded.response.body
    assert "RuntimeError" in loaded.response.body
    assert loaded.raw["environ_after"] == {"SHIM_TEST_SETTING": None}
    assert loaded.raw["cwd_after"] == str(site.approot)
    assert str(site.approot / "pkg") not in loaded.raw["sys_path_head"]


def test_secret_contents_never_reach_the_page():
    site = owner_site("secret", app_source={
        "app.py": "import os\nvalue = open(os.environ['DB_PASSWORD_FILE']).read().strip()\n"
                  "raise ValueError('cannot connect with password ' + value)\n"})
    write_file(site.site / "db_password", "hunter2-very-secret\n", 0o600)
    update_config(site, {"secret_files": {"DB_PASSWORD_FILE": str(site.site / "db_password")},
                         "environment": {"API_KEY": "ak-123456-secret"}})
    page = load_like_passenger(site).response
    assert "[app-exception]" in page.body
    assert "hunter2-very-secret" not in page.body
    assert "[redacted]" in page.body
    out = wsgi_shim("check", str(site.site))
    assert "hunter2-very-secret" not in out.stdout + out.stderr
    # A syntax error on a line holding a password must not show the line's text.
    write_file(site.config_toml, site.config_toml.read_text() + "\nDB_PASS = hunter3-plain\n", 0o600)
    # config.toml unreadable: the page is plain for everyone, `check` names the problem.
    page = load_like_passenger(site).response
    assert_plain(page)
    assert "hunter3-plain" not in page.body
    out = wsgi_shim("check", str(site.site))
    assert "[config-syntax]" in out.stdout and "hunter3-plain" not in out.stdout + out.stderr


def test_process_facts_on_the_error_page():
    site = owner_site("facts", app_source={"app.py": "raise RuntimeError('x')\n"})
    body = load_like_passenger(site).response.body
    for fact in (f"<td>user</td><td>{SITE_USER}</td>", "<td>group</td><td>shimproj</td>",
                 f"<td>app root</td><td>{site.approot}</td>", str(VENV / "bin/python")):
        assert fact in body


def test_start_up_problems_reach_the_app_log_even_with_a_broken_config():
    site = make_site("brokenlog")
    write_file(site.config_toml, "[passenger\n", 0o600)
    load_like_passenger(site)
    log = site.default_logs / "app.log"
    assert "[config-syntax]" in log.read_text()
    out = wsgi_shim("logs", str(site.site), "--errors")
    assert "[config-syntax]" in out.stdout


def _where(out: str, code: str) -> str:
    """The `where:` line `check` prints under the problem CODE."""
    m = re.search(rf"\[{re.escape(code)}\][^\n]*\n\s+where: ([^\n]*)", out)
    assert m, out
    return m.group(1)


def test_where_names_the_apps_own_line_and_the_config_line():
    # An error raised inside a library is shown where the app called it.
    site = owner_site("where", app_source={"app.py": "import json\n\nSETTINGS = json.loads('{')\n"})
    out = wsgi_shim("check", str(site.site)).stdout
    assert _where(out, "app-exception") == f"{site.approot}/app.py line 3"
    # A misspelt settings module is a config value: "where" is its line in config.toml, and
    # nothing advises installing a package.
    settings_site(site, "mysite.setings")
    out = wsgi_shim("check", str(site.site)).stdout
    line = next(n for n, text in enumerate(site.config_toml.read_text().splitlines(), 1)
                if text.startswith("APP_SETTINGS"))
    assert _where(out, "env-module-missing") == f"{site.config_toml} line {line}, [environment] APP_SETTINGS"
    assert "pip install" not in out and "app-dependency-missing" not in out
    # A variable exported in the shell only: named, with [environment] and [secret_files].
    write_file(site.approot / "app.py", "import os\nKEY = os.environ['SECRET_KEY']\n")
    out = wsgi_shim("check", str(site.site)).stdout
    assert _where(out, "app-env-missing") == f"{site.approot}/app.py line 2"
    assert "SECRET_KEY" in out and "[environment]" in out and "[secret_files]" in out


def test_venv_mismatch_never_calls_the_checkers_own_venv_passengers():
    site = owner_site("mismatch")
    venv = small_venv(site.site / "venv2")
    update_config(site, {"passenger": {"passenger_python": str(venv / "bin/python")}})
    # check --no-import runs the runtime checks in its own process (the shared venv, not the
    # site's): that is no evidence of what Passenger runs.
    out = wsgi_shim("check", "--no-import", str(site.site)).stdout
    assert "[venv-mismatch]" not in out and "what Passenger uses now" not in out, out
    # A real start in another venv than passenger_python names: Passenger's, and said so.
    page = load_like_passenger(site, [OWNER]).response
    assert "[venv-mismatch]" in page.body and "what Passenger uses now" in page.body
