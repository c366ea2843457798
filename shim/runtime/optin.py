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
TOKEN_COOKIE = "shim_debug_token"
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_BYTES = 4096


class OptIn:
    """``opt_in(environ)`` -> does this request see the details?"""

    def __init__(self, token: bytes = b"", networks: Sequence[Any] = (), everyone: bool = False) -> None:
        self.token = token
        self.networks = tuple(networks)
        self.everyone = everyone

    def __call__(self, environ: dict[str, Any]) -> bool:
        if self.everyone:
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


def from_config(cfg: Any, extra_addresses: Sequence[str] = ()) -> tuple[OptIn, list[str]]:
    """The opt-in of a site's [logging] section (None: config.toml unreadable, nobody is opted in
    but ``extra_addresses``), and warnings about settings that cannot be used."""
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
    return OptIn(token, networks, everyone), warnings


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
