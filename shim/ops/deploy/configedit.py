"""Editing config.toml for deploys: [wsgi] chdir = "current" (--init), one line only, every
comment kept, the file replaced atomically with its mode and group."""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
from pathlib import Path

from shim.ops.deploy.store import CURRENT, DeployError, current_link
from shim.runtime import advice
from shim.runtime.layout import Site

# ---- config.toml: [wsgi] chdir = "current" ---------------------------------------------------

WSGI_HEADER_RE = re.compile(r"^\s*\[\s*wsgi\s*\]\s*(#.*)?$")
ANY_HEADER_RE = re.compile(r"^\s*\[")
CHDIR_RE = re.compile(r"""^(\s*chdir\s*=\s*)(?:"([^"\\]*)"|'([^']*)')(\s*(?:#.*)?)$""")


def chdir_is_current(chdir: str) -> bool:
    """`current`, or a directory inside it (e.g. current/src for a src layout)."""
    norm = posixpath.normpath(chdir) if chdir else "."
    return norm == CURRENT or norm.startswith(CURRENT + "/")


def init_config_text(text: str) -> str:
    """config.toml's text with [wsgi] chdir set to "current", changing that one line only
    (or adding it right below [wsgi]), so every comment stays. Raises DeployError when the
    file is not in a shape this can do safely."""
    import tomllib

    lines = text.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if WSGI_HEADER_RE.match(line)]
    if len(headers) != 1:
        raise DeployError("config.toml has no plain [wsgi] section line to edit; set "
                          '[wsgi] chdir = "current" by hand.')
    start = headers[0] + 1
    end = next((i for i in range(start, len(lines)) if ANY_HEADER_RE.match(lines[i])), len(lines))
    chdir_lines = [i for i in range(start, end) if re.match(r"^\s*chdir\s*=", lines[i])]
    if len(chdir_lines) > 1:
        raise DeployError("config.toml sets [wsgi] chdir more than once; fix it by hand.")
    if chdir_lines:
        i = chdir_lines[0]
        m = CHDIR_RE.match(lines[i].rstrip("\r\n"))
        value = None if m is None else (m.group(2) if m.group(2) is not None else m.group(3))
        if value is None or posixpath.normpath(value or ".") != ".":
            raise DeployError(f"config.toml line {i + 1} ({lines[i].strip()}) does not say chdir = \".\"; "
                              "--init only changes that case. Set chdir by hand to \"current\", or to "
                              "\"current/SUBDIR\" if your package lives in SUBDIR of what you deploy.")
        newline = lines[i][len(lines[i].rstrip("\r\n")):]
        lines[i] = f'{m.group(1)}"{CURRENT}"{m.group(4)}{newline}'
    else:
        newline = "\r\n" if lines[headers[0]].endswith("\r\n") else "\n"
        if not lines[headers[0]].endswith(("\n", "\r")):
            lines[headers[0]] += newline
        lines.insert(start, f'chdir = "{CURRENT}"{newline}')
    new = "".join(lines)
    # Proof that only chdir changed: both texts parse to the same data but for that key.
    try:
        old_data, new_data = tomllib.loads(text), tomllib.loads(new)
    except (tomllib.TOMLDecodeError, UnicodeError) as exc:
        raise DeployError(f"config.toml does not parse ({exc}); run wsgi-shim check SITE.") from None
    old_data.setdefault("wsgi", {})["chdir"] = CURRENT
    if old_data != new_data:
        raise DeployError('config.toml could not be changed safely by --init; set [wsgi] chdir = "current" '
                          "by hand.")
    return new


def write_keeping_mode(path: Path, text: str) -> None:
    """Replace a file atomically, with the same permissions and group (a project group that
    lets the site's user read config.toml must survive the edit)."""
    st = path.stat()
    tmp = path.with_name(f".{path.name}.wsgi-shim-{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode())
        if os.fstat(fd).st_gid != st.st_gid:
            try:
                os.fchown(fd, -1, st.st_gid)
            except PermissionError:
                os.close(fd)
                os.unlink(tmp)
                raise DeployError(f"cannot give the edited {path.name} its group back (gid {st.st_gid}): "
                                  "you are not a member of it. Nothing was changed; run the deploy "
                                  "as a member of that group, or edit the file by hand.") from None
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.fsync(fd)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    os.replace(tmp, path)


def chdir_refusal(site: Site, chdir: str) -> str:
    shown = json.dumps(chdir) if chdir else "(not set: the app root)"
    return (f"{site.config_toml} has [wsgi] chdir = {shown}, but deploys serve the release that "
            f"{current_link(site)} points to. Set this line in its [wsgi] section:\n\n"
            f'    chdir = "{CURRENT}"\n\n'
            "and deploy right away: the first deploy creates `current` (until then the site cannot "
            'start). If your package lies in a subdirectory of what you deploy, use "current/SUBDIR". '
            "Or let wsgi-shim do both in one step: "
            f"{advice.command('deploy --init', site.site, 'SOURCE', task_args=())} (when chdir "
            'is "." or not set).')
