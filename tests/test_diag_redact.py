"""Secret redaction: secret file contents, secret-named environment values, request
credentials, configured patterns; and what must stay readable."""

from __future__ import annotations

import base64
import html
import json
import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from shim.runtime.redact import (
    MASK,
    Redactor,
    environment_secrets,
    escape_controls,
    header_secrets,
    looks_secret,
    mask_query,
    secret_env_values,
    structured_values,
)


def test_literal_secrets_and_their_lines():
    pem = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabc\n"
           "-----END PRIVATE KEY-----\n")
    r = Redactor(["hunter2hunter2", pem])
    assert r("pw=hunter2hunter2!") == f"pw={MASK}!"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in r("leaked MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert r(pem) == MASK


def test_longest_secret_wins_and_short_values_are_ignored():
    r = Redactor(["abcd", "abcdefgh", "ab", "true"])
    assert r("xx abcdefgh yy") == f"xx {MASK} yy"
    assert r("ab true") == "ab true"  # too short / harmless words would blank the log


def test_patterns_and_bad_patterns():
    r = Redactor([], [r"acct-\d{4}", "(", ".*?"])
    assert r("acct-1234 ok") == f"{MASK} ok"
    assert len(r.errors) == 2  # one invalid, one matching the empty string
    assert not Redactor()  # nothing to do: falsy, so callers can skip it


def test_secret_env_values():
    env = {"DJANGO_SECRET_KEY": "django-insecure-xyz", "DB_PASSWORD": "pw123456",
           "STRIPE_API_KEY": "sk_live_1", "HOME": "/root", "PWD": "/srv/site",
           "GOOGLE_APPLICATION_CREDENTIALS": "/etc/hostname", "SESSION_COOKIE_NAME": "sid-x"}
    values = secret_env_values(env)
    assert {"django-insecure-xyz", "pw123456", "sk_live_1", "sid-x"} <= set(values)
    assert "/root" not in values and "/srv/site" not in values
    assert "/etc/hostname" not in values  # a path to a secret is not the secret


def test_header_secrets():
    basic = base64.b64encode(b"alice:wonderland-pw").decode()
    env = {"HTTP_AUTHORIZATION": f"Basic {basic}", "HTTP_COOKIE": "a=cookieval1; b=\"quoted2\"",
           "HTTP_X_API_TOKEN": "tok-999", "HTTP_USER_AGENT": "curl/8", "AUTH_TYPE": "Basic",
           "DB_PASSWORD": "setenv-pw"}
    found = set(header_secrets(env))
    assert {basic, "wonderland-pw", "cookieval1", "quoted2", "tok-999", "setenv-pw"} <= found
    assert "curl/8" not in found and "Basic" not in found


def test_mask_query_and_names():
    assert mask_query("page=2&token=abc&password=x&q=hi") == \
        f"page=2&token={MASK}&password={MASK}&q=hi"
    assert looks_secret("HTTP_X_SHIM_DEBUG_TOKEN") and not looks_secret("HTTP_HOST")


def test_extended_keeps_base_and_adds():
    base = Redactor(["base-secret-1"], [r"id-\d+"])
    ext = base.extended(["request-secret-2", "x"])
    assert ext("base-secret-1 request-secret-2 id-7") == f"{MASK} {MASK} {MASK}"
    assert base("request-secret-2") == "request-secret-2"
    assert base.extended([]) is base


@given(secret=st.text(min_size=4, max_size=40).filter(lambda s: s.strip().lower() not in {
    "true", "false", "none", "null"} and len(s.strip()) >= 4),
       before=st.text(max_size=30), after=st.text(max_size=30))
def test_any_secret_is_masked_wherever_it_appears(secret, before, after):
    # The mask text itself may contain the secret (e.g. "dact"): look only outside the masks.
    assert secret not in Redactor([secret])(before + secret + after).replace(MASK, "\0")


_FORMS = [lambda s: s, lambda s: repr(s), lambda s: json.dumps(s), lambda s: json.dumps(s, ensure_ascii=False),
          lambda s: urllib.parse.quote(s, safe=""), lambda s: urllib.parse.quote(s),
          lambda s: urllib.parse.quote_plus(s), lambda s: html.escape(s),
          lambda s: base64.b64encode(s.encode()).decode(), lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
          lambda s: s.encode("unicode_escape").decode()]


@given(secret=st.text(min_size=8, max_size=30).filter(lambda s: s.strip() == s and "[redacted]"[:4] not in s),
       prefix=st.binary(max_size=5))
def test_every_printed_form_of_a_secret_is_masked(secret, prefix):
    r = Redactor([secret])
    for form in _FORMS:
        shown = form(secret)
        assert shown not in r(f"x {shown} y").replace(MASK, "\0"), (form, shown)
    # Inside a longer base64 blob (a Basic credential), at any alignment.
    blob = base64.b64encode(prefix + secret.encode("utf-8", "surrogateescape")).decode()
    assert MASK in r(blob), blob


def test_backslash_secret_in_repr_and_json():
    secret = "S3cr3t\\Pa55word!"
    r = Redactor([secret])
    assert r(repr({"pw": secret})) == f"{{'pw': '{MASK}'}}"
    assert r(json.dumps({"pw": secret})) == f'{{"pw": "{MASK}"}}'


def test_environment_values_and_structured_files():
    env = {"DB_PASS": "db-pass-Qw8822", "DEBUG": "true", "SHORT": "abc1234",
           "DJANGO_SETTINGS_MODULE": "mysite.settings", "DATA_DIR": "/etc", "STRIPE_SK": "sk_live_51Hx9zz"}
    assert sorted(environment_secrets(env)) == ["db-pass-Qw8822", "sk_live_51Hx9zz"]
    service = json.dumps({"type": "service_account", "private_key": "-----BEGIN KEY-----\nAAAABBBBCCCC\n",
                          "nested": {"client_secret": "nested-secret-1"}})
    assert {"service_account", "-----BEGIN KEY-----\nAAAABBBBCCCC\n", "nested-secret-1"} <= set(
        structured_values(service))
    dotenv = "# comment\nexport API_PASSWORD='quoted-pw-123'\nHOST = db.example.org\nkey: yaml-value-9\n"
    assert {"quoted-pw-123", "db.example.org", "yaml-value-9"} <= set(structured_values(dotenv))


def test_control_characters_are_escaped_visibly():
    forged = "/x\r2026-11-25T10:00:00.000Z [1] ERROR shim.request: error id deadbeef00\x1b[2J\u2028\x85"
    shown = escape_controls(forged)
    assert "\r" not in shown and "\x1b" not in shown and "\u2028" not in shown and "\x85" not in shown
    assert shown.startswith("/x\\r2026") and "\\x1b[2J" in shown
    assert escape_controls("tab\tand\nnewline") == "tab\tand\nnewline"
    assert escape_controls(shown) == shown  # idempotent
