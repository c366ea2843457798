"""config.toml parsing: 0.1.0 compatibility, forms of [wsgi] app, and messages that name the key."""

from __future__ import annotations

from pathlib import Path

from shim.runtime.config import parse_config

ROOT = Path("/srv/site/www-approot")

# A config.toml as wsgi-shim 0.1.0's `install` wrote it, with its users' typical additions.
V010 = """
[passenger]
passenger_user = "alice"
passenger_group = "webproj"
passenger_python = "/srv/site/venv/bin/python"
passenger_app_root = "/srv/site/www-approot"
passenger_restart_dir = "/srv/site/www-approot/tmp"
web_doc_root = "/srv/site/www-docroot"

[wsgi]
chdir = "mysite"
app = "mysite.wsgi.application"

[secret_files]
DB_PASSWORD_FILE = "/srv/site/secrets/db"

[environment]
DJANGO_SETTINGS_MODULE = "mysite.settings"
"""


def parse(text: str):
    return parse_config(text, ROOT / "config.toml", ROOT)


def test_a_010_config_is_accepted_unchanged():
    cfg, problems = parse(V010)
    assert problems == []
    assert (cfg.passenger_user, cfg.passenger_group) == ("alice", "webproj")
    assert (cfg.module, cfg.attribute) == ("mysite.wsgi", "application")
    assert cfg.chdir_path == ROOT / "mysite"
    assert cfg.env_vars() == {"DB_PASSWORD_FILE": "/srv/site/secrets/db",
                              "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    assert cfg.logging.enabled and cfg.logging.path == ROOT / "logs/app.log"


def test_app_forms():
    for text, expected in (('app = "pkg.mod:app"', ("pkg.mod", "app")),
                           ('app = "app.app"', ("app", "app")),
                           ('module = "tests.flask_example"\napp = "app"', ("tests.flask_example", "app"))):
        cfg, problems = parse(V010.replace('app = "mysite.wsgi.application"', text))
        assert problems == [] and (cfg.module, cfg.attribute) == expected


def test_problems_name_file_line_and_key():
    cfg, problems = parse(V010.replace("chdir =", "chdri ="))
    (p,) = problems
    assert p.code == "config-unknown-key"
    assert p.where == f"{ROOT}/config.toml line 11, [wsgi] chdri"
    assert "Did you mean 'chdir'?" in p.what


def test_environment_values_never_appear_in_messages():
    text = V010.replace('DJANGO_SETTINGS_MODULE = "mysite.settings"',
                        'DB_PASS = 12345678\nAPI-KEY = "sk-live-abcdef"')
    _, problems = parse(text)
    assert {p.code for p in problems} == {"config-wrong-type", "config-env-name"}
    for p in problems:
        assert "12345678" not in p.as_text() and "sk-live-abcdef" not in p.as_text()


def test_logging_section_values_are_validated():
    _, problems = parse(V010 + '\n[logging]\nlevel = "loud"\nmax_bytes = 10\ndebug_addresses = ["nope"]\n'
                               'redact = ["("]\ndebug_token_file = "token"\n')
    assert len(problems) == 5 and {p.code for p in problems} == {"config-bad-value"}
