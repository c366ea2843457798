"""The tasks' settings: the ``shim`` key of the Invoke/Fabric configuration, its defaults, and
their validation (unknown keys with a did-you-mean, dotted keys, wrong types), checked the way
``wsgi-shim check`` checks config.toml: every problem named with where it is and how to fix it.

Where a value comes from, most important last: these defaults (set on the collection),
``ns.configure()`` in your tasks.py / fabfile.py, /etc/invoke.yaml or ~/.invoke.yaml (``fab``:
fabric.yaml), the project's invoke.yaml (``fab``: fabric.yaml), ``-f FILE``, INVOKE_SHIM_* /
FABRIC_SHIM_* environment variables, then the task's own flag.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from invoke.exceptions import Exit

from shim.ops.buildpython import IMP_COMPAT

DEFAULTS: dict[str, Any] = {
    # The site directory (holds the app root, the docroot and, by default, the venv). Tasks that
    # touch a site refuse to guess it: set it in the config or pass --site.
    "site": "",
    # The site's virtual environment; empty means <site>/venv.
    "venv": "",
    # Names of the app root and document root inside the site directory.
    "approot": "www-approot",
    "docroot": "www-docroot",
    # The site's public URL; lets `restart --wait` and `status` ask over HTTP.
    "url": "",
    # What `install` puts into the venv: a built wheel file (local path), or a checkout to build
    # one from (empty: the checkout these tasks run from).
    "wheel": "",
    "source": "",
    # Passed to `wsgi-shim install` when `install` creates the site.
    "user": "",
    "group": "",
    "app": "",
    # SSH (fab -H): how host keys are checked. Fabric alone accepts any key; these tasks check
    # it against known_hosts (empty: ~/.ssh/known_hosts). strict: unknown hosts are refused;
    # accept-new: unknown hosts are recorded, changed keys refused; off: Fabric's behaviour.
    "known_hosts": "",
    "host_key_policy": "strict",
    # Seconds `restart --wait` waits for the new process by default.
    "restart_wait": 30,
    # The local preview (`serve`, `demo`).
    "host": "127.0.0.1",
    "port": 8000,
    # Python the site runs on (build-python / venv tasks): version to build, where to install it,
    # and the interpreter a venv is made from (empty: <python_prefix>/bin/pythonX.Y).
    "python_version": "3.11.2",
    "python_prefix": "",
    "python": "",
    # build-python: where it downloads and builds (empty: its default). build-python and venv:
    # the host's Passenger version where it has no passenger-config, and whether to add the
    # imp compatibility module Passenger before 6.0.19 needs on Python 3.12+ (auto, yes, no).
    "python_build_dir": "",
    "passenger_version": "",
    "imp_compat": "auto",
}

HOST_KEY_POLICIES = ("strict", "accept-new", "off")

# Where Invoke keeps each configuration layer, and how to name it to a user.
_LAYERS = (
    ("_runtime", "_runtime_path", "the -f file"),
    ("_project", "_project_path", "the project's config file"),
    ("_user", "_user_path", "the user config file"),
    ("_system", "_system_path", "the system config file"),
    ("_collection", None, "ns.configure() in tasks.py / fabfile.py"),
)


def setting(c, key: str, given: Any = None) -> Any:
    """The task's flag if given, else config shim.KEY, else its default."""
    if given not in (None, ""):
        return given
    value = (c.config.get("shim") or {}).get(key)
    return DEFAULTS.get(key, "") if value in (None, "") else value


def _source(c, top: str, key: str | None) -> str:
    """Which config layer (file) holds shim.KEY (or the top-level key TOP when KEY is None)."""
    config = c.config
    for layer, path_attr, label in _LAYERS:
        data = getattr(config, layer, None) or {}
        holder = data.get(top) if key is not None else data
        if isinstance(holder, dict) and (key or top) in holder:
            path = getattr(config, path_attr, None) if path_attr else None
            return f"{label} {path}" if path else label
    return "the configuration"


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, list(DEFAULTS), n=1, cutoff=0.6)
    return f", did you mean shim.{close[0]}?" if close else f" (known keys: {', '.join(DEFAULTS)})"


def _env_prefix(c) -> str:
    prefix = getattr(c.config, "_env_prefix", None) or "INVOKE_"
    return prefix if prefix.endswith("_") else prefix + "_"


def problems(c) -> list[str]:
    """Every mistake in the tasks' configuration, one line each (empty: all is well)."""
    found: list[str] = []
    for top in c.config.keys():
        if isinstance(top, str) and top.startswith("shim."):
            rest = top[len("shim."):]
            found.append(f"key {top!r} in {_source(c, top, None)}: Invoke does not split dotted "
                         f"keys, so it is ignored. Write it nested: `shim:` on one line, then "
                         f"`  {rest}: VALUE` indented under it.")
    shim = c.config.get("shim") or {}
    for key in shim.keys():
        if key not in DEFAULTS:
            found.append(f"unknown key shim.{key} in {_source(c, 'shim', key)}{_did_you_mean(key)}")
    prefix = _env_prefix(c) + "SHIM_"
    for name in sorted(os.environ):
        key = name[len(prefix):].lower()
        if name.startswith(prefix) and key not in DEFAULTS:
            close = difflib.get_close_matches(key, list(DEFAULTS), n=1, cutoff=0.6)
            hint = f", did you mean {prefix}{close[0].upper()}?" if close else ""
            found.append(f"unknown setting {name} in the environment (there is no shim.{key}){hint}")
    found += _type_problems(shim)
    return found


def _type_problems(shim) -> list[str]:
    found = []
    for key, default in DEFAULTS.items():
        value = shim.get(key)
        if value in (None, "") or (key == "imp_compat" and isinstance(value, bool)):
            continue  # YAML reads a bare yes/no as true/false: imp_compat takes those as meant
        if isinstance(default, int):
            try:
                number = float(value) if key == "restart_wait" else int(str(value))
            except ValueError:
                found.append(f"shim.{key} must be a number, not {value!r}")
                continue
            if key == "port" and not 0 < number < 65536:
                found.append(f"shim.port must be between 1 and 65535, not {value!r}")
            elif number < 0:
                found.append(f"shim.{key} must not be negative, not {value!r}")
        elif not isinstance(value, str):
            hint = " (YAML read it as a number: put it in quotes)" if isinstance(value, float) else ""
            found.append(f"shim.{key} must be text, not {value!r}{hint}")
    policy = shim.get("host_key_policy")
    if policy not in (None, "") and policy not in HOST_KEY_POLICIES:
        found.append(f"shim.host_key_policy must be strict, accept-new or off, not {policy!r}")
    imp = shim.get("imp_compat")
    if imp not in (None, "") and not isinstance(imp, bool) and str(imp).lower() not in IMP_COMPAT:
        found.append(f"shim.imp_compat must be auto, yes or no, not {imp!r}")
    return found


def validate(c) -> None:
    """End the task with exit 2 and every configuration problem, before anything runs."""
    found = problems(c)
    if found:
        lines = "\n".join(f"  {line}" for line in found)
        raise Exit(f"The tasks' configuration has {len(found)} problem(s):\n{lines}", code=2)
