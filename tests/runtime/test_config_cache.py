"""The parsed-config cache: used only while config.toml is the very same file, private, and never
trusted when it is not ours, not a regular file or damaged."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from shim.runtime import config_cache
from shim.runtime.config import load_config

CONFIG = """
[passenger]
passenger_user = "alice"
passenger_group = "webproj"
passenger_python = "/srv/site/venv/bin/python"

[wsgi]
app = "app.application"
chdir = "."

[environment]
GREETING = "aaaa"

[logging]
level = "debug"
colour = "blue"
"""


@pytest.fixture
def approot(tmp_path: Path) -> Path:
    root = tmp_path / "www-approot"
    (root / "tmp").mkdir(parents=True)
    (root / "config.toml").write_text(CONFIG)
    return root


def test_a_second_load_comes_from_the_cache_and_equals_a_fresh_parse(approot, monkeypatch):
    first = config_cache.load(approot)
    cache = config_cache.cache_path(approot)
    assert cache.exists()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600  # it holds what config.toml holds
    assert first[1] and first[1][0].code == "config-unknown-key"  # warnings are kept too
    calls = []
    monkeypatch.setattr(config_cache, "load_config", lambda root: calls.append(root) or load_config(root))
    second = config_cache.load(approot)
    assert calls == []  # not parsed again
    assert second == first == load_config(approot)
    assert second[0].environment == {"GREETING": "aaaa"} and second[0].logging.level == "DEBUG"


def test_a_changed_config_is_parsed_again_even_with_the_same_size(approot):
    config_cache.load(approot)
    (approot / "config.toml").write_text(CONFIG.replace('"aaaa"', '"bbbb"'))
    cfg, _ = config_cache.load(approot)
    assert cfg.environment == {"GREETING": "bbbb"}
    cfg, _ = config_cache.load(approot)  # and the cache now holds the new one
    assert cfg.environment == {"GREETING": "bbbb"}


def test_a_config_replaced_by_another_file_is_parsed_again(approot):
    config_cache.load(approot)
    other = approot / "new.toml"
    other.write_text(CONFIG.replace('"aaaa"', '"cccc"'))
    os.utime(other, ns=(os.stat(approot / "config.toml").st_mtime_ns,) * 2)
    other.replace(approot / "config.toml")
    assert config_cache.load(approot)[0].environment == {"GREETING": "cccc"}


def _poison(approot: Path) -> None:
    """Make the cache say GREETING = "evil" while keeping its key (as a forger would)."""
    import marshal

    path = config_cache.cache_path(approot)
    key, cfg, problems = marshal.loads(path.read_bytes())
    cfg["environment"] = {"GREETING": "evil"}
    mode = stat.S_IMODE(path.stat().st_mode)
    path.write_bytes(marshal.dumps((key, cfg, problems)))
    path.chmod(mode)


def test_a_cache_readable_by_others_is_ignored(approot):
    config_cache.load(approot)
    _poison(approot)
    assert config_cache.load(approot)[0].environment == {"GREETING": "evil"}  # the forgery would work...
    config_cache.cache_path(approot).chmod(0o644)
    assert config_cache.load(approot)[0].environment == {"GREETING": "aaaa"}  # ...but not when exposed
    assert stat.S_IMODE(config_cache.cache_path(approot).stat().st_mode) == 0o600  # rewritten privately


def test_a_damaged_cache_is_a_miss(approot):
    config_cache.load(approot)
    path = config_cache.cache_path(approot)
    path.write_bytes(b"\x00garbage")
    assert config_cache.load(approot)[0].environment == {"GREETING": "aaaa"}
    path.write_bytes(path.read_bytes()[:40])  # torn
    assert config_cache.load(approot)[0].environment == {"GREETING": "aaaa"}


def test_a_fifo_or_symlink_in_its_place_never_blocks_and_is_ignored(approot, tmp_path):
    path = config_cache.cache_path(approot)
    os.mkfifo(path, 0o600)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(config_cache.load(approot)), daemon=True)
    worker.start()
    worker.join(10)
    assert result and result[0][0].environment == {"GREETING": "aaaa"}
    path.unlink()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    path.symlink_to(target)
    assert config_cache.load(approot)[0].environment == {"GREETING": "aaaa"}


def test_no_tmp_directory_means_no_cache_and_no_error(approot):
    (approot / "tmp").rmdir()
    assert config_cache.load(approot)[0].environment == {"GREETING": "aaaa"}
    assert not (approot / "tmp").exists()


def test_a_config_that_cannot_be_read_is_reported_as_before(approot):
    (approot / "config.toml").unlink()
    assert config_cache.load(approot) == load_config(approot)
    assert config_cache.load(approot)[1][0].code == "config-missing"
