"""Every subcommand, driven with malformed values as the site's user: one clear line and exit 2
(usage) or 1, never a traceback, never an escape sequence sent raw to the terminal."""

from __future__ import annotations

import os
import socket

import pytest

from tests.support.sites import load_like_passenger, make_site, write_file, wsgi_shim

pytestmark = pytest.mark.realserver


@pytest.fixture(scope="module")
def site():
    return make_site("badinput")


@pytest.fixture(scope="module")
def nested():
    """A config.toml of 5000 nested brackets (RecursionError in tomllib)."""
    site = make_site("nested")
    write_file(site.config_toml, "x = " + "[" * 5000 + "\n", 0o600)
    return site


def assert_one_clear_line(out, code: int, *expected: str) -> None:
    said = (out.stderr + out.stdout) if out.returncode == 2 else out.stderr
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    assert "internal error" not in out.stderr
    assert "\x1b" not in out.stderr + out.stdout
    for text in expected:
        assert text in said, (text, said)
    if code == 1:
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


S = "{site}"
CASES = [
    # URLs
    (["status", S, "--url", "notaurl"], 2, "is not an http:// or https:// URL"),
    (["status", S, "--url", "file:///etc/passwd"], 2, "is not an http:// or https:// URL"),
    (["status", S, "--url", "http://[::1/"], 2, "is not a valid URL"),
    (["status", S, "--url", "http://127.0.0.1:99999/"], 2, "invalid port"),
    (["restart", S, "--wait", "1", "--url", "notaurl"], 2, "is not an http:// or https:// URL"),
    (["restart", S, "--wait", "1", "--url", "file:///etc/passwd"], 2, "is not an http:// or https:// URL"),
    (["restart", S, "--wait", "nan"], 2, "must be between 0 and 86400"),
    (["restart", S, "--wait", "-1"], 2, "must be between 0 and 86400"),
    (["restart", S, "--wait", "soon"], 2, "not a number of seconds"),
    # ports and hosts
    (["serve", S, "--port", "99999"], 2, "is not a port number (0 to 65535)"),
    (["serve", S, "--port", "-1"], 2, "is not a port number"),
    (["serve", S, "--port", "http"], 2, "is not a port number"),
    (["serve", S, "--host", "no such host.invalid", "--port", "0"], 1, "cannot listen on no such host.invalid:0"),
    (["demo", "--port", "99999"], 2, "is not a port number"),
    # paths
    (["demo", "/proc/x", "--port", "0"], 1, "wsgi-shim demo: cannot create the demo site in /proc/x"),
    (["check", "/proc/x"], 1, "wsgi-shim check: /proc/x is not a site: /proc/x does not exist."),
    (["status", "/etc/passwd"], 1, "/etc/passwd is not a site: /etc/passwd is not a directory."),
    (["logs", "relative/nowhere"], 1, "is not a site"),
    (["maint", "on", "/nope\x1b[2J"], 1, "/nope\\x1b[2J is not a site"),
    (["restart", "/" + "x" * 5000], 1, "is not a site"),
    (["check", S, "-a", "../.."], 1, "-a/--approot must be a single directory name"),
    (["install", "relative/site"], 1, "absolute"),
    (["install", "/proc/x/site"], 1, "/proc/x does not exist"),
    (["install", "/nonexistent-dir/site", "--app", "no dots"], 1, "--app 'no dots' is not module.attribute"),
    (["install", "/nonexistent-dir/site", "--app", "mysite/wsgi.py"], 1, "is not module.attribute"),
    # odd values
    (["maint", "sideways", S], 2, "invalid choice"),
    (["logs", S, "-n", "many"], 2, "is not a whole number"),
    (["logs", S, "-n", "-5"], 2, "must not be negative"),
    (["logs", S, "--since", "yesterday-ish"], 2, "give a duration like"),
    (["logs", S, "--id", "../../etc/passwd"], 1, "No app log yet"),
    (["nosuchcommand"], 2, "invalid choice"),
    # the deploy subcommands (the deploy engineer's code)
    (["releases", "/nope"], 1, "/nope is not a site"),
    (["rollback", "/nope"], 1, "/nope is not a site"),
    (["deploy", "/nope", "/tmp"], 1, "/nope is not a site"),
    (["deploy", S, "/nonexistent-source"], 1, "/nonexistent-source"),
    (["rollback", S, "--to", "../../etc"], 1, ""),
    (["deploy", S, "/tmp", "--keep", "0"], 2, ""),
]


@pytest.mark.parametrize("args,code,expected", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_malformed_values_get_one_clear_line(site, args, code, expected):
    argv = [a.replace(S, str(site.site)) for a in args]
    out = wsgi_shim(*argv, timeout=120)
    assert_one_clear_line(out, code, expected)


@pytest.mark.parametrize("command", [["check"], ["status"], ["logs"], ["restart"], ["maint", "on"],
                                     ["releases"]])
def test_a_deeply_nested_config_is_no_traceback(nested, command):
    out = wsgi_shim(*command[:1], *command[1:], str(nested.site), timeout=120)
    assert "Traceback" not in out.stderr + out.stdout
    assert out.returncode in (0, 1), out.stderr


def test_a_busy_port_for_serve_is_one_line(site):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        out = wsgi_shim("serve", str(site.site), "--port", str(taken), timeout=60)
    assert_one_clear_line(out, 1, f"cannot listen on 127.0.0.1:{taken}: Address already in use")


def test_a_site_with_a_close_neighbour_gets_a_did_you_mean(site):
    typo = site.site.parent / "sitte"
    out = wsgi_shim("status", str(typo))
    assert_one_clear_line(out, 1, f"{typo} is not a site: {typo} does not exist. Did you mean {site.site}?")
    inside = site.approot / "tmp"
    out = wsgi_shim("logs", str(inside))
    assert_one_clear_line(out, 1, f"Did you mean {site.site} (the site containing it)?")
    os.rename(site.approot, site.site / "approot")
    try:
        out = wsgi_shim("check", str(site.site))
        assert_one_clear_line(out, 1, "Did you mean -a approot (it holds a config.toml)?")
    finally:
        os.rename(site.site / "approot", site.approot)


def test_a_huge_line_count_means_all_entries():
    site = make_site("hugecount")
    load_like_passenger(site)  # an app log to read
    out = wsgi_shim("logs", str(site.site), "-n", "9" * 30, timeout=120)
    assert out.returncode == 0, out.stderr  # it was "internal error: OverflowError"
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr
    assert "process started" in out.stdout
