"""Secret redaction for everything the shim writes to the app log or shows on a page.

    from shim.runtime.redact import Redactor, secret_env_values
    redact = Redactor(secrets=config.secret_values() + secret_env_values(), patterns=cfg.redact)
    safe_text = redact(text)

What is masked:
  * the contents of [secret_files] files (whole, stripped, and each longer line, so a PEM key
    or a multi-line credentials file is caught even when only one line leaks),
  * values of environment variables whose names look secret (``secret_env_values``),
  * per request, on the error path only: Authorization / Cookie / X-Shim-Debug-Token header values
    (``Redactor.extended``),
  * anything matching the regular expressions of ``[logging] redact``.

Standard library only; cheap to import (one ``re`` import, patterns compiled once).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

MASK = "[redacted]"

# Shorter values would mask common words everywhere ("on", "1", "true") and ruin the log.
MIN_SECRET_LENGTH = 4
# Lines of a multi-line secret file are masked one by one only when long enough to be specific.
MIN_LINE_LENGTH = 8

# Names of environment variables / headers / query parameters whose values are treated as secret.
SECRET_NAME = re.compile(
    r"(?i)(secret|passw|pwd|token|api[_-]?key|access[_-]?key|private|credential|auth|session"
    r"|cookie|csrf|xsrf|signature|salt|dsn|database_url|db_url|_key$|^key$|conn(ection)?_?str)"
)

# Values that must never be treated as secrets even under a secret-looking name.
_HARMLESS = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off", "0", "1"})


def looks_secret(name: str) -> bool:
    """True when a variable, header or parameter name suggests its value is a secret."""
    return SECRET_NAME.search(name) is not None


# Environment variables whose names match SECRET_NAME but that hold public, everyday values
# (masking PWD would blank every path in every traceback).
_NOT_SECRET_ENV = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS",
                             "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS",
                             "XDG_SESSION_DESKTOP", "DESKTOP_SESSION", "AUTH_TYPE",
                             "SERVER_SIGNATURE", "PASSENGER_SPAWN_WORK_DIR"})


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (e.g. DJANGO_SECRET_KEY).

    A value that is the path of an existing file is skipped: it names where a secret is
    (GOOGLE_APPLICATION_CREDENTIALS, [secret_files] variables), it is not the secret, and
    masking it would hide paths in tracebacks.
    """
    env = os.environ if environ is None else environ
    out = []
    for k, v in env.items():
        if not isinstance(v, str) or k in _NOT_SECRET_ENV or not looks_secret(k):
            continue
        if v.startswith("/") and " " not in v and os.path.exists(v):
            continue
        out.append(v)
    return out


def expand_secret(value: str) -> list[str]:
    """The forms of one secret value worth masking: itself, stripped, and its long lines."""
    out = [value, value.strip()]
    if "\n" in value:
        out += [line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LINE_LENGTH]
    return out


class Redactor:
    """Callable text -> text with every known secret replaced by ``[redacted]``.

    One compiled alternation for the literal secrets (longest first, so a secret that contains
    another is masked whole) plus the configured patterns. ``errors`` lists patterns that did not
    compile (the caller reports them; they are skipped, never fatal).
    """

    def __init__(self, secrets: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for s in secrets:
            if not isinstance(s, str):
                continue
            for form in expand_secret(s):
                if len(form) >= MIN_SECRET_LENGTH and form.lower() not in _HARMLESS:
                    values.add(form)
        self._values = frozenset(values)
        self._patterns = tuple(str(p) for p in patterns)
        self.errors: list[str] = []
        regexes: list[re.Pattern[str]] = []
        if values:
            alternation = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
            regexes.append(re.compile(alternation))
        for p in self._patterns:
            try:
                rx = re.compile(p)
            except re.error as exc:
                self.errors.append(f"{p!r}: {exc}")
                continue
            if rx.search(""):
                # A pattern matching the empty string would insert the mask everywhere.
                self.errors.append(f"{p!r}: matches the empty string")
                continue
            regexes.append(rx)
        self._regexes = tuple(regexes)

    def __call__(self, text: str) -> str:
        for rx in self._regexes:
            text = rx.sub(MASK, text)
        return text

    def __bool__(self) -> bool:
        return bool(self._regexes)

    def extended(self, more: Iterable[str]) -> Redactor:
        """A redactor that also masks ``more`` (per-request values such as header contents)."""
        extra = [m for m in more if isinstance(m, str) and len(m.strip()) >= MIN_SECRET_LENGTH]
        if not extra:
            return self
        r = Redactor(list(self._values) + extra, self._patterns)
        return r


def header_secrets(environ: Mapping[str, object]) -> list[str]:
    """Secret values a request carries: credentials, cookies, the debug token, secret-named
    headers and server variables (e.g. a SetEnv'd DB_PASSWORD). Used on the error path only."""
    out: list[str] = []
    for key, value in environ.items():
        if not isinstance(value, str) or not value:
            continue
        if key in ("HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION"):
            out.append(value)
            scheme, _, cred = value.partition(" ")
            if cred:
                out.append(cred.strip())
                if scheme.lower() == "basic":
                    out += _basic_parts(cred.strip())
        elif key == "HTTP_COOKIE":
            out.append(value)
            for part in value.split(";"):
                _, _, v = part.partition("=")
                if v.strip():
                    out.append(v.strip().strip('"'))
        elif key.isupper() and key not in _NOT_SECRET_ENV and looks_secret(key):
            out.append(value)
    return out


def _basic_parts(b64: str) -> list[str]:
    import base64
    import binascii

    try:
        decoded = base64.b64decode(b64, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return []
    _user, _, password = decoded.partition(":")
    return [decoded, password]


def mask_query(query: str) -> str:
    """QUERY_STRING with the values of secret-looking parameters (token=, password=...) masked."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        parts.append(f"{name}={MASK}" if eq and looks_secret(name) else item)
    return "&".join(parts)
