"""Issue 17 item 5: masking that hides no clue, and no secret.

The owner's traceback read `Failed to load config file '.../[redacted]'`: any [environment] value
of 8+ characters was masked, so a plain path hid the one clue that mattered. A path (absolute or
relative, existing or not) or a dotted module name is shown now; secret files, values under
secret-looking names and passwords inside URLs stay masked. Real boundary: a site made by
`wsgi-shim install` as the site's user, passenger_wsgi.py loaded as Passenger loads it, the CLI
as a subprocess.
"""

from __future__ import annotations

import html

import pytest

from shim.runtime.redact import MASK, Redactor, environment_secrets, secret_looking_environment
from tests.support.sites import load_like_passenger, make_site, update_config, write_file, wsgi_shim

OWNER = {"path": "/"}  # from 127.0.0.1: opted in by debug_addresses below
OWNER_CONFIG = {"logging": {"debug_addresses": ["127.0.0.1"]}}

LAZY_CONFIG_APP = r'''
import os

def application(environ, start_response):
    # Like a CalDAV server that reads its configuration at the first request.
    path = os.environ["RADICALE_CONFIG"]
    try:
        open(path).close()
    except OSError as exc:
        raise RuntimeError(f"Failed to load config file {path!r}: {exc}; settings "
                           f"{os.environ['SETTINGS']}; data in {os.environ['DATA_DIR']}; db "
                           f"{os.environ['DATABASE_URL']}; key {os.environ['API_KEY']}; "
                           f"opaque {os.environ['SHOP_ID']}") from None
'''

ENVIRONMENT = {"RADICALE_CONFIG": "/srv/nowhere/radicale/config.ini",  # absolute, missing
               "DATA_DIR": "data/collections",                          # relative, missing
               "SETTINGS": "mysite.settings_production",                # dotted module name
               "DATABASE_URL": "postgres://shop:Db-pw-Zq81x9@db.example.org:5432/shop",
               "API_KEY": "ak-Lq8Rzt05Vnm2",                            # secret-looking name
               "SHOP_ID": "shp_9fKq2LmX0aZ"}                            # opaque, not a path
SECRETS = ["Db-pw-Zq81x9", "ak-Lq8Rzt05Vnm2", "shp_9fKq2LmX0aZ", "file-secret-Yt66Q"]


def test_rules_unit():
    values = environment_secrets(ENVIRONMENT)
    assert sorted(values) == sorted(["Db-pw-Zq81x9", "ak-Lq8Rzt05Vnm2", "shp_9fKq2LmX0aZ"])
    r = Redactor(values)
    text = r("postgres://shop:Db-pw-Zq81x9@db.example.org:5432/shop and redis://:short@cache/0")
    assert text == f"postgres://shop:{MASK}@db.example.org:5432/shop and redis://:{MASK}@cache/0"
    assert sorted(secret_looking_environment(ENVIRONMENT)) == ["API_KEY", "DATABASE_URL"]
    # A random token with a slash is not a path; a secret-named path-like value stays masked.
    assert environment_secrets({"T": "Xk29/ab3KdQQ+zz="}) == ["Xk29/ab3KdQQ+zz="]
    assert environment_secrets({"DB_PASS": "not/a-path-Qw8"}) == ["not/a-path-Qw8"]


@pytest.mark.realserver
def test_paths_and_module_names_are_shown_secrets_are_not():
    site = make_site("clues", config=OWNER_CONFIG, app_source={"app.py": LAZY_CONFIG_APP})
    write_file(site.site / "secret.txt", "file-secret-Yt66Q\n", 0o600)
    update_config(site, {"environment": ENVIRONMENT,
                         "secret_files": {"SECRET_FILE": str(site.site / "secret.txt")}})
    page = load_like_passenger(site, [OWNER]).response
    body = html.unescape(page.body)
    assert page.code == 500 and "RuntimeError" in body, body
    log = "".join(p.read_text() for p in site.default_logs.glob("app.log*"))
    for text, where in ((body, "the owner's page"), (log, "the app log")):
        assert "Failed to load config file '/srv/nowhere/radicale/config.ini'" in text, where
        assert "data in data/collections" in text and "settings mysite.settings_production" in text, where
        assert f"db postgres://shop:{MASK}@db.example.org:5432/shop" in text, where
        assert f"key {MASK}" in text and f"opaque {MASK}" in text, where
        for secret in SECRETS:
            assert secret not in text, (secret, where)
    # check: the clue shown, the secret-looking values named with the fix, no secret printed.
    out = wsgi_shim("check", str(site.site), timeout=600)
    text = out.stdout + out.stderr
    assert "[env-secret]" in text and "API_KEY" in text and "DATABASE_URL" in text, text
    assert "RADICALE_CONFIG" not in text.split("[env-secret]", 1)[1].split("\n")[0]
    for secret in SECRETS:
        assert secret not in text, secret
