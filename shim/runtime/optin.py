"""Who sees the details of a failure: the one rule for start-up and request error pages.

A request is opted in when it carries the contents of ``[logging] debug_token_file`` (header
X-Shim-Debug-Token or cookie shim_debug_token, compared in constant time), when its
REMOTE_ADDR lies inside ``[logging] debug_addresses``, or when the site chose
``[logging] details_for_everyone = true``. Built only on an error path; testing a request costs
a dict lookup or two.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

TYPE_CHECKING = False  # importing typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

TOKEN_HEADER = "HTTP_X_SHIM_DEBUG_TOKEN"
# The owner's browser gets the token cookie from a URL `wsgi-shim debug-url` prints (never from
# page script, which could not make it HttpOnly): ?shim-debug-login=EXPIRY-MAC, a code that is
# valid for LOGIN_SECONDS and is not the token (so server logs and browser history keep no token).
LOGIN_PARAM = "shim-debug-login"
LOGIN_SECONDS = 600
# Set by the preview's gate (shim/ops/preview.py) on requests that carry its cookie; WSGI servers
# only make HTTP_* keys from a request, so no visitor can set it.
PREVIEW_OWNER = "wsgi_shim.preview_owner"
TOKEN_COOKIE = "shim_debug_token"
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_BYTES = 4096


class OptIn:
    """``opt_in(environ)`` -> does this request see the details?"""

    def __init__(self, token: bytes = b"", networks: Sequence[Any] = (), everyone: bool = False,
                 preview: bool = False) -> None:
        self.token = token
        self.networks = tuple(networks)
        self.everyone = everyone
        self.preview = preview

    def __call__(self, environ: dict[str, Any]) -> bool:
        if self.everyone or (self.preview and environ.get(PREVIEW_OWNER) is True):
            return True
        if self.token:
            import hmac

            sent = environ.get(TOKEN_HEADER) or cookie_value(environ.get("HTTP_COOKIE", ""), TOKEN_COOKIE)
            if sent and hmac.compare_digest(sent.strip().encode("utf-8", "replace"), self.token):
                return True
        if self.networks:
            import ipaddress

            try:
                addr = ipaddress.ip_address(str(environ.get("REMOTE_ADDR", "")).split("%")[0])
            except ValueError:
                return False
            return any(addr in net for net in self.networks if addr.version == net.version)
        return False


def cookie_value(cookie_header: str, name: str) -> str:
    for part in cookie_header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v.strip().strip('"')
    return ""


def from_config(cfg: Any, extra_addresses: Sequence[str] = (), preview: bool = False) -> tuple[OptIn, list[str]]:
    """The opt-in of a site's [logging] section (None: config.toml unreadable, nobody is opted in
    but ``extra_addresses`` and, with ``preview``, the preview's owner), and warnings about
    settings that cannot be used."""
    warnings: list[str] = []
    token = b""
    token_file = str(getattr(cfg, "debug_token_file", "") or "")
    if token_file:
        token, why = read_token(token_file)
        if why:
            warnings.append(f"[logging] debug_token_file {token_file} {why}; "
                            "no request sees tracebacks by token.")
    networks: list[Any] = []
    bad: list[str] = []
    if hasattr(cfg, "debug_networks"):  # parsed once per process, by shim.runtime.config
        found, bad = cfg.debug_networks()
        networks += found
    if extra_addresses:
        import ipaddress

        networks += [ipaddress.ip_network(a, strict=False) for a in extra_addresses]
    for a in bad:
        warnings.append(f"[logging] debug_addresses entry {a!r} is not an IP address or "
                        "network; it is ignored.")
    everyone = getattr(cfg, "details_for_everyone", False) is True
    return OptIn(token, networks, everyone, preview), warnings


def login_code(token: bytes, now: float | None = None) -> str:
    """A code for ?shim-debug-login= that sets the token cookie for LOGIN_SECONDS from now."""
    import hmac
    import time

    expires = int((time.time() if now is None else now) + LOGIN_SECONDS)
    mac = hmac.new(token, f"{LOGIN_PARAM}:{expires}".encode(), "sha256").hexdigest()[:32]
    return f"{expires}-{mac}"


def _valid_login(token: bytes, code: str) -> bool:
    import hmac
    import time

    expires, _, mac = code.partition("-")
    if not token or not expires.isdigit() or not 0 <= int(expires) - time.time() <= LOGIN_SECONDS:
        return False
    wanted = hmac.new(token, f"{LOGIN_PARAM}:{expires}".encode(), "sha256").hexdigest()[:32]
    return hmac.compare_digest(mac.encode("utf-8", "replace"), wanted.encode())


def login(environ: dict[str, Any], start_response: Any, token: bytes) -> list[bytes] | None:
    """Answer a request carrying a valid ?shim-debug-login= code: a redirect to the same URL
    without it that sets the token cookie HttpOnly and SameSite=Strict (Secure over https).
    None for every other request (callers test LOGIN_PARAM in the query string first)."""
    from urllib.parse import parse_qsl, quote, urlencode

    pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    codes = [v for k, v in pairs if k == LOGIN_PARAM]
    if not codes or not _valid_login(token, codes[-1]):
        return None
    rest = urlencode([(k, v) for k, v in pairs if k != LOGIN_PARAM])
    base = quote(environ.get("SCRIPT_NAME", "") or "", safe="/")
    path = base + quote(environ.get("PATH_INFO", "") or "/", safe="/")
    secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
    cookie = (f"{TOKEN_COOKIE}={token.decode('utf-8', 'replace')}; Path={base or '/'}; HttpOnly; "
              f"SameSite=Strict{secure}")
    start_response("303 See Other", [("Location", path + ("?" + rest if rest else "")), ("Set-Cookie", cookie),
                                     ("Cache-Control", "no-store"), ("Content-Length", "0")])
    return [b""]


def read_token(path: str) -> tuple[bytes, str]:
    """The debug token and "", or b"" and why the token cannot be used. Never blocks: the file
    must be a regular file (shim.runtime.files)."""
    import stat

    from shim.runtime.files import open_regular

    try:
        fd = open_regular(path)
    except (OSError, ValueError) as exc:
        return b"", f"cannot be read ({getattr(exc, 'reason', None) or getattr(exc, 'strerror', None) or exc})"
    try:
        st = os.fstat(fd)
        data = os.read(fd, MAX_TOKEN_BYTES).strip()
    except OSError as exc:
        return b"", f"cannot be read ({exc.strerror or exc})"
    finally:
        os.close(fd)
    if st.st_uid not in (0, os.geteuid()):  # whoever owns it decides who sees the details
        from shim.runtime.permissions import name_of_user

        return b"", (f"is owned by {name_of_user(st.st_uid)}, not by the site's user "
                     f"{name_of_user(os.geteuid())}")
    if st.st_mode & stat.S_IROTH:
        return b"", "is readable by everyone (chmod 600 it)"
    try:
        from shim.runtime.permissions import group_is_safe

        if st.st_mode & stat.S_IRGRP and not group_is_safe(st.st_gid, None):
            return b"", "is readable by a group shared with other users (chmod 600 it)"
    except ImportError:  # pragma: no cover
        pass
    if len(data) < MIN_TOKEN_LENGTH:
        return b"", (f"holds fewer than {MIN_TOKEN_LENGTH} characters (make one with "
                     "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return data, ""
