"""The owner's log entry for a failed request: what it always shows, what it masks, how big it is.

    head, body = build(environ, error_id, "", site_redactor, sys.exc_info())

Used by shim.runtime.diagnostics on the error path only (nothing here runs for a healthy request).

Two kinds of secrets, two rules (docs/security.md):
  * the site's (secret files, [environment], secret-named server variables such as a SetEnv'd
    DB_PASSWORD, [logging] redact patterns, URL passwords): masked everywhere, by value;
  * the visitor's (Authorization and Cookie values, secret-named header values, secret-named query
    values such as ?reset_token=): masked where they stand and in the rest of the entry, but never
    in what the owner always needs, the *protected* parts: the request line (method, path,
    protocol, client address), the User-Agent line, the traceback's frames and the exception's
    type. A visitor chooses these values, so masking them by value everywhere would let a cookie
    equal to their own address or to "ValueError" erase the evidence of their request.

Bounded: each header value is cut at HEADER_VALUE_LIMIT characters and the header block at
HEADER_BLOCK_LIMIT, the path at PATH_LIMIT, each saying how many bytes it left out.
"""

from __future__ import annotations

from collections.abc import Callable

from shim.runtime.redact import MASK, Redactor, looks_secret, mask_query

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

HEADER_VALUE_LIMIT = 1024   # characters of one header value in the log (Apache allows 8190)
HEADER_BLOCK_LIMIT = 8192   # characters of all header lines of one entry
PATH_LIMIT = 2048           # characters of the request path in the request line
# Headers whose whole value is a credential: masked (a Cookie line keeps the cookies' names).
CREDENTIAL_HEADERS = frozenset({"HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_COOKIE",
                                "HTTP_X_SHIM_DEBUG_TOKEN"})
PROTECTED_HEADERS = frozenset({"HTTP_USER_AGENT"})
# Server variables that look secret by name but hold everyday values.
_PUBLIC_SERVER_VARS = frozenset({"AUTH_TYPE", "SERVER_SIGNATURE", "PASSENGER_SPAWN_WORK_DIR"})


def more(n: int) -> str:
    return f" ... ({n} bytes more)"


def _cap(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[:limit] + more(len(value.encode("utf-8", "surrogateescape")[limit:]))


# -- what the visitor sent -------------------------------------------------------------------

def visitor_secrets(environ: dict[str, Any]) -> list[str]:
    """Values the visitor sent that may be credentials: Authorization (and a Basic password),
    cookie values, secret-named header values and secret-named query values."""
    from shim.runtime.redact import _basic_parts, _unquote

    out: list[str] = []
    for key, value in environ.items():
        if not key.startswith("HTTP_") or not isinstance(value, str) or not value:
            continue
        if key in ("HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION"):
            scheme, _, cred = value.partition(" ")
            out += [value, cred.strip()]
            if scheme.lower() == "basic":
                out += _basic_parts(cred.strip())
        elif key == "HTTP_COOKIE":
            out += [part.partition("=")[2].strip().strip('"') for part in value.split(";")]
        elif looks_secret(key[5:]):
            out.append(value)
    for item in str(environ.get("QUERY_STRING", "")).split("&"):
        name, eq, value = item.partition("=")
        if eq and value and looks_secret(_unquote(name)):
            out += [value, _unquote(value.replace("+", " "))]
    return [v for v in out if v]


def server_secrets(environ: dict[str, Any]) -> list[str]:
    """Secret-named variables the server set (SetEnv DB_PASSWORD ...): the site's secrets."""
    return [v for k, v in environ.items() if isinstance(v, str) and v and k.isupper()
            and not k.startswith("HTTP_") and k not in _PUBLIC_SERVER_VARS and looks_secret(k)]


# -- the parts of the entry ------------------------------------------------------------------

def request_line(environ: dict[str, Any]) -> str:
    """METHOD PATH?QUERY PROTOCOL from CLIENT, secret-named query values masked, the path capped."""
    path = _cap(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), PATH_LIMIT)
    query = _cap(mask_query(environ.get("QUERY_STRING", "")), PATH_LIMIT)
    parts = [environ.get("REQUEST_METHOD", "?"), (path or "/") + ("?" + query if query else ""),
             environ.get("SERVER_PROTOCOL", ""), "from", environ.get("REMOTE_ADDR", "?")]
    return " ".join(p for p in parts if p)


def _credential_shape(key: str, value: str) -> str:
    """A credential header as the owner may see it: the cookies' names only."""
    if key == "HTTP_COOKIE":
        names = [part.partition("=")[0].strip() for part in value.split(";") if part.strip()]
        return "; ".join(f"{n}={MASK}" for n in names) or MASK
    return MASK  # Authorization: even the scheme is left out (it may be the credential)


def header_lines(environ: dict[str, Any]) -> list[tuple[str, bool]]:
    """(line, protected) for each request header, credentials shown as their shape, each value
    and the whole block capped."""
    lines: list[tuple[str, bool]] = []
    used = 0
    keys = sorted(k for k in environ if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH"))
    for n, key in enumerate(keys):
        name = "-".join(part.capitalize() for part in key.removeprefix("HTTP_").split("_"))
        value = str(environ[key])
        if key in CREDENTIAL_HEADERS:
            value = _credential_shape(key, value)
        elif looks_secret(key.removeprefix("HTTP_")):
            value = MASK
        line = f"{name}: {_cap(value, HEADER_VALUE_LIMIT)}"
        if used + len(line) > HEADER_BLOCK_LIMIT:
            left = sum(len(k) + len(str(environ[k])) for k in keys[n:])
            lines.append((f"({len(keys) - n} more headers not logged, {left} bytes more)", True))
            break
        used += len(line)
        lines.append((line, key in PROTECTED_HEADERS))
    return lines


def request_headers(environ: dict[str, Any]) -> list[str]:
    """The header lines as logged (credentials masked, values and block capped)."""
    return [line for line, _ in header_lines(environ)]


def traceback_pieces(exc_info: tuple[Any, Any, TracebackType | None]) -> list[tuple[str, bool]]:
    """The formatted traceback in pieces, (text, protected): the frames and the fixed lines are
    protected; each exception's own line is split into its type (protected) and message."""
    import traceback

    etype, value, tb = exc_info
    if etype is None:
        return []
    te = traceback.TracebackException(etype, value, tb, compact=True)
    frames: set[str] = set()
    types: list[str] = []
    seen: set[int] = set()
    todo = [te]
    while todo:  # every exception of the chain (cause, context, groups' members)
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        frames.update(one.stack.format())
        types.append(_type_name(one.exc_type))
        todo += [x for x in (one.__cause__, one.__context__) if x is not None]
        todo += list(getattr(one, "exceptions", None) or [])
    pieces: list[tuple[str, bool]] = []
    for chunk in te.format(chain=True):
        if chunk in frames or chunk.lstrip().startswith(("File ", "Traceback (most recent call last)")) \
                or chunk.strip().startswith(("The above exception", "During handling of the above")):
            pieces.append((chunk, True))
            continue
        head = _type_at_start(chunk, types)
        if head is None:
            pieces.append((chunk, False))
        else:
            cut = chunk.index(head) + len(head)
            pieces += [(chunk[:cut], True), (chunk[cut:], False)]
    return pieces


def _type_at_start(chunk: str, types: list[str]) -> str | None:
    """The exception type this exception line starts with ("ValueError: ..."), or None."""
    text = chunk.lstrip(" |+-")
    for t in sorted(types, key=len, reverse=True):
        if text.startswith(t) and text[len(t):len(t) + 1] in (":", "\n", ""):
            return t
    return None


def _type_name(etype: Any) -> str:
    if etype is None:
        return "None"
    module = getattr(etype, "__module__", "")
    name = getattr(etype, "__qualname__", str(etype))
    return name if module in ("builtins", "__main__", "") else f"{module}.{name}"


# -- the entry --------------------------------------------------------------------------------

def build(environ: dict[str, Any], error_id: str, when: str, site: Redactor,
          exc_info: tuple[Any, Any, TracebackType | None]) -> tuple[str, str]:
    """(first line, the rest) of the entry, every part masked by its rule."""
    site = site.extended(server_secrets(environ))
    visitor: Callable[[str], str] = Redactor(visitor_secrets(environ)) or str
    head = f"error id {error_id}: {request_line(environ)}" + (f" ({when})" if when else "")
    parts = [(line + "\n", protected) for line, protected in header_lines(environ)]
    parts += traceback_pieces(exc_info)
    body = "".join(site(text) if protected else visitor(site(text)) for text, protected in parts)
    return site(head), body.rstrip("\n") + "\n"
