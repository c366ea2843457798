"""`wsgi-shim debug-url`: the address that lets the owner's browser see the detailed pages.

The browser gets the `shim_debug_token` cookie from the site itself (shim/runtime/optin.py
login()), HttpOnly and SameSite=Strict, by opening SITE-URL?shim-debug-login=CODE. CODE is not
the token: it is valid for ten minutes and proves knowledge of the token, so what the web
server logs and the browser's history keep opens nothing for long.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

from shim.runtime import optin
from shim.runtime.layout import Site


class DebugUrlError(Exception):
    """A message for the user: no address can be made."""


def debug_url(site: Site, url: str | None) -> tuple[str, str]:
    """(the address to open, until when it works, in words). Raises DebugUrlError."""
    from shim.runtime.config import load_config

    cfg, _ = load_config(site.approot)
    token_file = cfg.logging.debug_token_file if cfg is not None else ""
    if not token_file or not os.path.isabs(token_file):
        raise DebugUrlError(f"{site.config_toml} sets no [logging] debug_token_file (an absolute path): "
                            "make a token first (see docs/logs.md), then restart the site")
    token, why = optin.read_token(token_file)
    if why:
        raise DebugUrlError(f"[logging] debug_token_file {token_file} {why}")
    base = url or "https://YOUR-SITE/"
    parts = urlsplit(base)
    if "@" in parts.netloc:  # never repeated: it may hold a password
        raise DebugUrlError("--url holds a user name or password; give the site's address without them")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DebugUrlError(f"--url {base!r} is not an http:// or https:// address of the site")
    code = optin.login_code(token)
    joined = base + ("&" if parts.query else "?")
    until = time.strftime("%H:%M UTC", time.gmtime(int(code.split("-")[0])))
    return f"{joined}{optin.LOGIN_PARAM}={code}", until
