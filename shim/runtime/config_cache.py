"""config.toml parsed once, not at every process start.

    cfg, problems = load(app_root)     # what shim.runtime.config.load_config(app_root) returns

Passenger starts app processes often (first request, restart, pool growth under load), and
parsing config.toml (importing tomllib, which imports typing and datetime, then checking every
key) was a few milliseconds of each start. The parsed result is kept in APPROOT/tmp/CACHE_NAME
and used while config.toml is the very same file: same device, inode, size, modification time
and inode change time (ctime, which no user can set back: any write, rename or chmod moves it),
parsed by the same wsgi-shim code (version and config.py's size and mtime) under the same
Python. Anything else is a miss and a fresh parse, which rewrites the cache.

The cache holds what config.toml holds (environment values may be passwords), so it is as
private as can be: mode 600, owned by the process's user, written to a temporary file and
renamed into place. A cache file that is not a regular file, not ours, readable by others or
unreadable is ignored (never blocked on: opened with O_NONBLOCK and O_NOFOLLOW). Failing to
write it is not an error: the next start parses again. `wsgi-shim check` never uses it.

marshal (built in, nothing to import) stores plain values only: Paths are kept as strings.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
from pathlib import Path

from shim import __version__
from shim.runtime import config as config_module
from shim.runtime.config import Config, LoggingConfig, load_config
from shim.runtime.problems import FIELDS, Problem

CACHE_NAME = ".wsgi-shim-config-cache"
MAX_CACHE_BYTES = 1 << 20
_CONFIG_PATHS = ("app_root", "file")  # Path fields, stored as strings
_LOGGING_PATHS = ("path", "starts_path")


def cache_path(app_root: Path) -> Path:
    return app_root / "tmp" / CACHE_NAME


def load(app_root: Path) -> tuple[Config | None, list[Problem]]:
    """load_config(app_root), from the cache when config.toml has not changed since it was made."""
    file = app_root / "config.toml"
    key = _key(app_root, file)
    if key is None:
        return load_config(app_root)
    cached = _read(cache_path(app_root), key)
    if cached is not None:
        return cached
    cfg, problems = load_config(app_root)
    if cfg is not None and _key(app_root, file) == key:  # unchanged while we read it
        _write(cache_path(app_root), key, cfg, problems)
    return cfg, problems


def _key(app_root: Path, file: Path) -> tuple | None:
    try:
        st = os.stat(file)
        code = os.stat(config_module.__file__)
    except OSError:
        return None  # load_config says what is wrong
    if not stat.S_ISREG(st.st_mode):
        return None
    return (__version__, sys.hexversion, code.st_size, code.st_mtime_ns, str(app_root),
            st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _plain(obj: Config | LoggingConfig) -> dict:
    out = {}
    for name, value in obj.fields().items():
        if isinstance(value, LoggingConfig):
            value = _plain(value)
        elif isinstance(value, Path):
            value = str(value)
        out[name] = value
    return out


def _revive(data: dict) -> Config:
    values = {k: Path(v) if k in _CONFIG_PATHS else v for k, v in data.items()}
    values["logging"] = LoggingConfig(**{k: Path(v) if k in _LOGGING_PATHS else v
                                         for k, v in data["logging"].items()})
    return Config(**values)


def _read(path: Path, key: tuple) -> tuple[Config, list[Problem]] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077
                or st.st_size > MAX_CACHE_BYTES):
            return None
        data = os.read(fd, MAX_CACHE_BYTES + 1)
        stored_key, config, problems = marshal.loads(data)
        if tuple(stored_key) != key:
            return None
        return _revive(config), [Problem(**dict(zip(FIELDS, p))) for p in problems]
    except Exception:  # noqa: BLE001 - a damaged cache is only a miss
        return None
    finally:
        os.close(fd)


def _write(path: Path, key: tuple, cfg: Config, problems: list[Problem]) -> None:
    if not path.parent.is_dir():
        return
    data = marshal.dumps((key, _plain(cfg), [p._key() for p in problems]))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # not ours to write (another user's tmp/, a read-only file system): parse next time
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
