"""What an import failure says about the site's own code and config, beyond the exception.

Imported only when importing the app failed (shim/runtime/loader.py describe_import_failure):
which frame is the site's own (not a library's), a KeyError from os.environ (a variable
Passenger never got), and a missing module that is a config value or a module of the app's own
package rather than a package to pip install. Standard library only.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from shim.runtime.config import Config
from shim.runtime.problems import Problem

_SHIM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The traceback's frames outside importlib's frozen code and wsgi-shim, outermost first."""
    return [f for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith("<") and not f.filename.startswith(_SHIM_DIR + os.sep)]


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r + os.sep) for r in roots)


def _is_site_code(filename: str, cfg: Config, roots: list[str], libraries: list[str]) -> bool:
    """In the site's code: under chdir or the app root (resolved, as `current` links), and not in
    a venv or an installed package that happens to lie there."""
    real = os.path.realpath(filename)
    if _under(real, libraries) or f"{os.sep}site-packages{os.sep}" in real or f"{os.sep}dist-packages{os.sep}" in real:
        return False
    return _under(real, roots)


def user_frame(exc: BaseException, cfg: Config | None = None) -> str:
    """"FILE line N" of the innermost frame in the site's own code (under chdir or the app root),
    so that an error raised inside a library (flask/config.py) is shown where the app called it;
    else the innermost frame outside importlib and wsgi-shim; "" when there is none."""
    frames = _frames(exc)
    if cfg is not None:
        roots = [os.path.realpath(cfg.chdir_path), os.path.realpath(cfg.app_root)]
        libraries = [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix} if p]
        for frame in reversed(frames):
            if _is_site_code(frame.filename, cfg, roots, libraries):
                return f"{frame.filename} line {frame.lineno}"
    return f"{frames[-1].filename} line {frames[-1].lineno}" if frames else ""


def environ_key(exc: BaseException) -> str | None:
    """The variable's name when EXC is os.environ[NAME]'s KeyError (raised in os.py), else None."""
    if not isinstance(exc, KeyError) or not exc.args:
        return None
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb or tb[-1].name != "__getitem__":
        return None
    # os is a frozen module from Python 3.11 on ("<frozen os>"), a file before.
    if tb[-1].filename != "<frozen os>" and os.path.realpath(tb[-1].filename) != os.path.realpath(os.__file__):
        return None
    return str(exc.args[0])


def env_missing_problem(name: str, cfg: Config, where: str, detail: str) -> Problem:
    return Problem(
        "app-env-missing",
        f"Importing {cfg.module} reads the environment variable {name}, which is not set in the app "
        f"process (KeyError: {name!r} from os.environ).", where,
        "Passenger starts the app from the web server, not from your shell: variables you export "
        "there (or set in ~/.bashrc) never reach it. Set it in config.toml: [environment] "
        f"{name} = \"value\"; for a secret, put it in a file (mode 600) and name the file in "
        f"[secret_files] (e.g. {name}_FILE = \"/path/to/file\": the app gets the file's path and reads "
        "it). See docs/configuration.md.", detail)


def config_line(cfg: Config, section: str, key: str) -> str:
    """"config.toml line N, [section] key" (the line when the file can be read)."""
    from shim.runtime.config import _line_of
    from shim.runtime.files import read_regular

    try:
        line = _line_of(read_regular(cfg.file, 1024 * 1024).decode("utf-8", "replace"), section, key)
    except OSError:
        line = None
    return f"{cfg.file}" + (f" line {line}" if line else "") + f", [{section}] {key}"


def _modules_in(package: Path) -> list[str]:
    try:
        entries = os.listdir(package)
    except OSError:
        return []
    return sorted({e[:-3] if e.endswith(".py") else e for e in entries
                   if not e.startswith((".", "_")) and (e.endswith(".py") or (package / e).is_dir())})


def _own_package(missing: str, cfg: Config) -> Path | None:
    """The app's own package directory MISSING's top-level name is, if it lies in chdir."""
    top = missing.split(".")[0]
    path = cfg.chdir_path / top
    return path if path.is_dir() else None


def _close(missing: str, cfg: Config) -> tuple[str, list[str]]:
    """(" Did you mean 'pkg.x'?" or "", the modules beside MISSING's last part)."""
    import difflib

    parent, _, last = missing.rpartition(".")
    where = cfg.chdir_path.joinpath(*parent.split(".")) if parent else cfg.chdir_path
    names = _modules_in(where)
    close = difflib.get_close_matches(last, names, n=1, cutoff=0.6)
    return (f" Did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else ""), names


def module_not_found_problem(missing: str, cfg: Config, where: str, detail: str) -> Problem | None:
    """A module that is a value of [environment] (DJANGO_SETTINGS_MODULE = "mysite.setings") or a
    module of the app's own package: a config value or the site's code to correct, not a package
    to install. None for anything else."""
    for name, value in cfg.environment.items():
        if value == missing or value.startswith(missing + "."):
            hint, names = _close(missing, cfg)
            return Problem(
                "env-module-missing",
                f"[environment] {name} = \"{value}\" names a module Python cannot find: '{missing}'.{hint}",
                config_line(cfg, "environment", name),
                f"Correct {name} in config.toml's [environment]"
                + (f" (beside it: {', '.join(names[:15])})" if names else "")
                + "; it is a module of your app, not a package to install.", detail)
    if "." in missing and _own_package(missing, cfg) is not None:
        hint, names = _close(missing, cfg)
        return Problem(
            "app-own-module-missing",
            f"Importing {cfg.module} needs module '{missing}', which is not in your app's package "
            f"{missing.split('.')[0]} ({cfg.chdir_path / missing.split('.')[0]}).{hint}", where,
            "Correct the import (or the setting that names it) at the line shown, or add the module"
            + (f"; the package holds: {', '.join(names[:15])}" if names else "") + ".", detail)
    return None
