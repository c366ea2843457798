"""Secret redaction for everything the shim writes to the app log, a start record or a page.

    from shim.runtime.redact import Redactor, secret_env_values
    redact = Redactor(secrets=config.secret_values() + secret_env_values(), patterns=cfg.redact)
    safe_text = redact(text)

Built once per process (shim.runtime.loader.get_app) and handed to the app log, the import
failure report and the exception middleware; the middleware adds the debug token with ``add``.

What is masked (see docs/security.md):
  * the contents of [secret_files] files: whole, stripped, each line of at least 8 characters
    (a PEM key or a credentials file is caught when one line leaks), and the values inside a
    structured file (JSON string values, ``KEY=value`` / ``key: value`` lines of a .env file),
  * [environment] values (``environment_secrets``) and values of process environment variables
    whose names look secret (``secret_env_values``), one value at a time by ``env_value_secrets``:
    a value under a secret-looking name is masked whole; a URL only in its password (and
    secret-named query values), so ``postgres://user:[redacted]@host/db`` keeps the clue; a path
    (absolute or relative, existing or not) or a dotted module name under any other name is shown,
    any other value of at least 8 characters is masked,
  * the password of every ``scheme://user:password@`` URL in any text (``URL_PASSWORD``),
  * per request, on the error path only: Authorization / Cookie / secret-named header and query
    values (shim.runtime.error_entry masks them where they stand and in the traceback's text,
    never in the request line, the frames or the exception's type),
  * anything matching the regular expressions of ``[logging] redact``.
Each secret is masked in every form it is likely to be printed in: literal, repr()/backslash-
escaped, JSON-escaped, URL-encoded (quote and quote_plus), HTML-escaped and base64 (standard
and URL-safe, at each of the three byte alignments, so a secret inside a longer base64 blob such
as a Basic auth header is caught too).

Values shorter than MIN_MASK_LENGTH (8) from config are not masked: a short value ("on", "self",
"admin") occurs everywhere, so masking it would garble every traceback and, by where the mask
appears, tell a reader what the secret is. ``wsgi-shim check`` warns about such secrets.

Standard library only; cheap at start-up: the variants and the regular expression are built
on the first call, i.e. only when something is written or shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

TYPE_CHECKING = False  # importing typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

MASK = "[redacted]"

# Explicit values (request headers) shorter than this are ignored: "1" or "on" is no secret.
MIN_SECRET_LENGTH = 4
# Values taken from config.toml, secret files and the environment: shorter ones are not masked
# (they would garble every traceback and reveal themselves by where the mask lands).
MIN_MASK_LENGTH = 8
# Lines of a multi-line secret file are masked one by one only when long enough to be specific.
MIN_LINE_LENGTH = 8

# Names of environment variables / headers / query parameters whose values are treated as secret.
SECRET_NAME = re.compile(
    r"(?i)(secret|passw|pwd|token|api[_-]?key|access[_-]?key|private|credential|auth|session"
    r"|cookie|csrf|xsrf|signature|salt|dsn|database_url|db_url|_key$|^key$|conn(ection)?_?str"
    r"|(^|[_-])pass($|[_-]))"
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

# [environment] names whose values are public by nature and appear in every traceback
# (masking DJANGO_SETTINGS_MODULE would hide which settings module failed to import).
PUBLIC_ENV = frozenset({"DJANGO_SETTINGS_MODULE", "FLASK_APP", "FLASK_ENV", "PYTHONPATH", "PATH",
                        "HOME", "LANG", "LANGUAGE", "TZ", "PYTHONIOENCODING", "PYTHONUNBUFFERED",
                        "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED"})


def _is_existing_path(value: str) -> bool:
    return value.startswith("/") and " " not in value and os.path.exists(value)


# A URL: scheme://... (the password of one is masked in place, see URL_PASSWORD).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# scheme://user:password@ anywhere in a text: the password is replaced, the rest stays readable.
URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)[^\s/@]+(@)")
# What a path is made of: no whitespace, no base64 padding or "+" (so a random token is not one).
_PATH = re.compile(r"[\w.~@,:%/-]+")
# A dotted name: a module (myapp.settings), a host (db.example.org), a file name (radicale.ini).
_DOTTED = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+")


def looks_like_path(value: str) -> bool:
    """True for a file system path, existing or not: absolute (/srv/x, ~/x), explicitly relative
    (./x, ../x) or relative with a slash and a file name or lower-case segments (conf/app.ini)."""
    v = value.strip()
    if not v or _PATH.fullmatch(v) is None or "://" in v:
        return False
    if v.startswith(("/", "~/", "./", "../")) or v in (".", ".."):
        return True
    if "/" not in v:
        return False
    segments = [s for s in v.split("/") if s]
    return v == v.lower() or any("." in s[1:] for s in segments)


def looks_like_module(value: str) -> bool:
    """True for a dotted name such as mysite.settings_prod or radicale.ini."""
    return _DOTTED.fullmatch(value.strip()) is not None


def _unquote(text: str) -> str:
    """%XX decoded (urllib.parse.unquote without importing urllib)."""
    if "%" not in text:
        return text
    raw = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 text.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")


def url_secrets(url: str, secret_name: bool = False) -> list[str]:
    """What to mask of a URL: its password (as written and decoded), secret-named query values,
    and, under a secret-looking name, the user part when there is no password (a Sentry DSN's
    key) or the whole URL when no part of it can be told to be the secret."""
    rest = url.strip().split("://", 1)[-1]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    out: list[str] = []
    if "@" in netloc:
        user, colon, password = netloc.rpartition("@")[0].partition(":")
        if colon and password:
            out += [password, _unquote(password)]
        elif secret_name and user:
            out += [user, _unquote(user)]
    _, _, query = rest.partition("?")
    for item in query.split("#")[0].split("&"):
        name, eq, value = item.partition("=")
        if eq and value and looks_secret(name):
            out += [value, _unquote(value)]
    if secret_name and not out:
        return [url]
    return [v for v in dict.fromkeys(out) if len(v.strip()) >= MIN_MASK_LENGTH]


def env_value_secrets(name: str, value: str) -> list[str]:
    """What to mask of one environment value named ``name`` (see the module docstring)."""
    if not isinstance(value, str) or not value.strip():
        return []
    if _URL.match(value.strip()):
        return url_secrets(value, looks_secret(name))
    if _is_existing_path(value):
        return []  # names where a secret is (GOOGLE_APPLICATION_CREDENTIALS), not the secret
    if len(value.strip()) < MIN_MASK_LENGTH:
        return []
    if looks_secret(name):
        return [value]
    if looks_like_path(value) or looks_like_module(value):
        return []  # the clue a traceback needs: "Failed to load config file 'conf/x.ini'"
    return [value]


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
        if _URL.match(v.strip()):
            out += url_secrets(v, True)
        elif not _is_existing_path(v):
            out.append(v)
    return out


def environment_secrets(environment: Mapping[str, str]) -> list[str]:
    """The [environment] values to mask (``env_value_secrets`` of each), except PUBLIC_ENV names
    and LC_* (those show in tracebacks anyway)."""
    out: list[str] = []
    for k, v in environment.items():
        if k not in PUBLIC_ENV and not k.startswith("LC_"):
            out += env_value_secrets(k, v)
    return out


def secret_looking_environment(environment: Mapping[str, str]) -> list[str]:
    """[environment] names whose values look like secrets (a secret-looking name, or a URL with a
    password): `check` suggests moving them to [secret_files]."""
    out = []
    for k, v in environment.items():
        if not isinstance(v, str) or k in PUBLIC_ENV or k in _NOT_SECRET_ENV or not v.strip():
            continue
        if _URL.match(v.strip()):
            if URL_PASSWORD.search(v.strip()) or (looks_secret(k) and url_secrets(v, True)):
                out.append(k)
        elif looks_secret(k) and not looks_like_path(v) and not _is_existing_path(v):
            out.append(k)
    return out


def structured_values(text: str) -> list[str]:
    """Values inside a structured secret file: JSON string values (nested too) and the right-hand
    sides of ``KEY=value`` / ``key: value`` lines (.env, YAML, INI), quotes removed."""
    out: list[str] = []
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        import json

        try:
            _json_strings(json.loads(stripped), out)
        except (ValueError, RecursionError):
            pass
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(?:export\s+)?[\"']?[\w.-]+[\"']?\s*[=:]\s*(.+?)\s*,?$", line)
        if m:
            value = m.group(1)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out.append(value)
    return out


def _json_strings(node: object, out: list[str], depth: int = 0) -> None:
    if depth > 50:
        return
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, dict):
        for v in node.values():
            _json_strings(v, out, depth + 1)
    elif isinstance(node, list):
        for v in node:
            _json_strings(v, out, depth + 1)


def expand_secret(value: str) -> list[str]:
    """The pieces of one secret value worth masking: itself, stripped, and its long lines."""
    out = [value, value.strip()]
    if "\n" in value or "\r" in value:
        out += [line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LINE_LENGTH]
    return out


# Unreserved characters of RFC 3986: what urllib.parse.quote(value, safe="") leaves as is.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _quote(raw: bytes, safe: bytes = b"", plus: bool = False) -> str:
    """urllib.parse.quote / quote_plus without importing urllib (not needed on a healthy start)."""
    out = []
    for b in raw:
        if b in _UNRESERVED or b in safe:
            out.append(chr(b))
        elif plus and b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _html_escape(value: str, quote: bool = True) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace('"', "&quot;").replace("'", "&#x27;") if quote else value


def encoded_forms(value: str) -> set[str]:
    """How a value may appear when printed: literal, repr()/escaped, JSON-escaped, URL-encoded,
    HTML-escaped, base64 (standard and URL-safe, at every byte alignment). Built from builtins
    and json only (both loaded at every start already)."""
    import binascii
    import json

    raw = value.encode("utf-8", "surrogateescape")
    forms = {value, repr(value)[1:-1], value.encode("unicode_escape").decode("ascii"),
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
             _quote(raw), _quote(raw, b"/"), _quote(raw, plus=True), _html_escape(value),
             _html_escape(value, quote=False)}
    for k in range(3):
        # Only the base64 characters fed by the secret's own bits: the same text wherever the
        # secret sits in a longer encoded blob with this alignment.
        encoded = binascii.b2a_base64(b"\0" * k + raw + b"\0\0", newline=False).decode("ascii")
        core = encoded[-(-8 * k // 6):(8 * (k + len(raw))) // 6]
        forms.add(core)
        forms.add(core.replace("+", "-").replace("/", "_"))
    whole = binascii.b2a_base64(raw, newline=False).decode("ascii")
    forms.add(whole)
    forms.add(whole.replace("+", "-").replace("/", "_"))
    return forms


class Redactor:
    """Callable text -> text with every known secret replaced by ``[redacted]``.

    The literal secrets in all their forms are replaced longest first (so a secret that contains
    another is masked whole), then the configured patterns. Plain substring search, no regular
    expression to compile: cheap to build, and a text without a secret costs one scan per form.
    ``errors`` lists patterns that did not compile (the caller reports them; they are skipped,
    never fatal). Built lazily: nothing is computed until the first call.
    """

    def __init__(self, secrets: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self._secrets: list[str] = [s for s in secrets if isinstance(s, str)]
        self._patterns = tuple(str(p) for p in patterns)
        self._errors: list[str] | None = None
        self._pattern_rx: tuple[re.Pattern[str], ...] = ()
        self._values: tuple[str, ...] | None = None
        self._index: dict[str, tuple[str, ...]] | None = None

    # -- building, on first use -----------------------------------------------------------

    @property
    def errors(self) -> list[str]:
        if self._errors is None:
            self._compile_patterns()
        return self._errors  # type: ignore[return-value]

    def _compile_patterns(self) -> None:
        errors: list[str] = []
        regexes: list[re.Pattern[str]] = []
        for p in self._patterns:
            try:
                rx = re.compile(p)
            except re.error as exc:
                errors.append(f"{p!r}: {exc}")
                continue
            if rx.search(""):
                # A pattern matching the empty string would insert the mask everywhere.
                errors.append(f"{p!r}: matches the empty string")
                continue
            regexes.append(rx)
        self._pattern_rx = tuple(regexes)
        self._errors = errors

    def _build(self) -> None:
        values: set[str] = set()
        for s in self._secrets:
            for piece in expand_secret(s):
                if len(piece) < MIN_SECRET_LENGTH or piece.lower() in _HARMLESS:
                    continue
                values.update(f for f in encoded_forms(piece) if len(f) >= MIN_SECRET_LENGTH)
        self._values = tuple(sorted(values, key=len, reverse=True))
        self._index = None

    def _indexed(self) -> dict[str, tuple[str, ...]]:
        """The values by their first MIN_SECRET_LENGTH characters (longest first in each)."""
        if self._index is None:
            index: dict[str, list[str]] = {}
            for v in self._values or ():
                index.setdefault(v[:MIN_SECRET_LENGTH], []).append(v)
            self._index = {k: tuple(v) for k, v in index.items()}
        return self._index

    def _mask_indexed(self, text: str) -> str:
        """Every occurrence of every value masked, in one pass over the text whatever the number
        of values (a 3,600-line CA bundle as a secret file is 19,000 forms): at each position one
        dict lookup by the next few characters; overlapping matches are masked as one."""
        index = self._indexed()
        get = index.get
        spans: list[list[int]] = []
        for i in range(len(text) - MIN_SECRET_LENGTH + 1):
            candidates = get(text[i:i + MIN_SECRET_LENGTH])
            if candidates is None:
                continue
            for v in candidates:
                if text.startswith(v, i):
                    if spans and i <= spans[-1][1]:
                        spans[-1][1] = max(spans[-1][1], i + len(v))
                    else:
                        spans.append([i, i + len(v)])
                    break
        if not spans:
            return text
        out, at = [], 0
        for start, end in spans:
            out += [text[at:start], MASK]
            at = end
        out.append(text[at:])
        return "".join(out)

    # -- use ------------------------------------------------------------------------------

    def __call__(self, text: str) -> str:
        if self._values is None:
            self._build()
        if self._errors is None:
            self._compile_patterns()
        values: tuple[str, ...] = self._values  # type: ignore[assignment]
        # Few values: one C-speed substring search each. Many (a big secret file) or a long
        # text: one pass with a lookup per position, so the cost follows the text's length only.
        if len(values) * 16 > len(text) + 256:
            text = self._mask_indexed(text)
            values = ()
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        for rx in self._pattern_rx:
            text = rx.sub(MASK, text)
        if "://" in text:
            text = URL_PASSWORD.sub(rf"\1{MASK}\2", text)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets) or bool(self._patterns)

    def add(self, more: Iterable[str]) -> None:
        """Mask these values too from now on (e.g. the debug token, read after start-up)."""
        extra = [m for m in more if isinstance(m, str) and len(m.strip()) >= MIN_SECRET_LENGTH]
        if extra:
            self._secrets += extra
            self._values = None  # rebuilt on the next call

    def extended(self, more: Iterable[str]) -> Redactor:
        """A redactor that also masks ``more`` (per-request values such as header contents)."""
        extra = [m for m in more if isinstance(m, str) and len(m.strip()) >= MIN_SECRET_LENGTH]
        if not extra:
            return self
        if self._values is None:
            self._build()
        more_values = Redactor(extra)
        more_values._build()  # only the request's values: the site's forms are reused
        r = Redactor(self._secrets + extra, self._patterns)
        r._values = tuple(sorted(set(self._values) | set(more_values._values),  # type: ignore[arg-type]
                                 key=len, reverse=True))
        if self._index is not None:  # reuse the site's index: add only the request's values
            index = dict(self._index)
            for v in sorted(more_values._values or (), key=len, reverse=True):  # type: ignore[arg-type]
                key = v[:MIN_SECRET_LENGTH]
                index[key] = tuple(sorted((*index.get(key, ()), v), key=len, reverse=True))
            r._index = index
        return r

    def problems(self, problems: list[Any]) -> list[Any]:
        """Problems with every text field masked (for start records, pages and the log)."""
        if not problems or not self:
            return problems
        return [p.replace(what=self(p.what), where=self(p.where), fix=self(p.fix),
                          detail=self(p.detail) if p.detail else p.detail) for p in problems]


# Characters that move a terminal's cursor, change its state or end a line for some reader:
# C0 controls but tab and newline, DEL, C1 controls, Unicode line/paragraph separators and the
# bidirectional overrides. A visitor controls request paths and headers, so these must never
# reach the log raw (a CR + a fake header line would read as an entry of its own) nor a terminal.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\x1b": "\\x1b", "\x0b": "\\v", "\x0c": "\\f", "\x00": "\\0"}


def _escape_one(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape_controls(text: str) -> str:
    """text with every control character but newline and tab written as a visible escape
    (\\r, \\x1b, \\u2028); text without any is returned as is (one regex search)."""
    if _CONTROLS.search(text) is None:
        return text
    return _CONTROLS.sub(_escape_one, text)


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
