"""Reading config.toml: a Config plus every problem found, never an exception.

Compatible with files written for wsgi-shim 0.1.0. Values of [environment] and the contents
of [secret_files] are never put into a message: the error page is public.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from shim.runtime.layout import DEFAULT_LOG_FILE, log_paths
from shim.runtime.problems import Problem

TYPE_CHECKING = False  # typing itself costs milliseconds at every start; annotations only need it here
if TYPE_CHECKING:
    from typing import Any

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
APP_SPEC = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# section -> key -> expected type. [secret_files] and [environment] take any variable name.
SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "passenger": {
        "passenger_user": str,
        "passenger_group": str,
        "passenger_python": str,
        # informational: written by `wsgi-shim install` (and 0.1.0's template) for the sysadmins
        "passenger_app_root": str,
        "passenger_restart_dir": str,
        "passenger_app_type": str,
        "passenger_startup_file": str,
        "web_doc_root": str,
    },
    "wsgi": {"chdir": str, "app": str, "module": str},
    "secret_files": {},
    "environment": {},
    "maintenance": {"page": str, "retry_after": int},
    # `wsgi-shim deploy` only (not used at run time): release commands, and the paths kept in
    # SITE/shared/ across releases (docs/deploying.md#shared-paths)
    "deploy": {"run": list, "shared": list},
    # `wsgi-shim check` (and every deploy's check): the requests sent to the app after the import
    "check": {"requests": list, "host": str, "timeout": int},
    "logging": {
        "enabled": bool,
        "file": str,
        "max_bytes": int,
        "backups": int,
        "level": str,
        "capture_output": bool,
        "catch_errors": bool,
        "debug_token_file": str,
        "debug_addresses": list,
        "details_for_everyone": bool,
        "redact": list,
    },
    # read by `wsgi-shim run --job`, `cron`, `alert` and `check`, never at start-up: mistakes are
    # warnings (the site still serves). [jobs] holds one table per job: its keys are JOB_KEYS.
    "jobs": {},
    "alerts": {"mail": str, "smtp": str, "login": str, "interval": int, "sender": str},
}
# [jobs.NAME] keys; "schedule" and "command" are required (docs/jobs-and-alerts.md)
NOT_AT_START = ("jobs", "alerts")  # their mistakes are warnings: the site serves regardless
JOB_KEYS: dict[str, type | tuple[type, ...]] = {"schedule": str, "command": str, "timeout": int}
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ALERT_INTERVAL = 60  # minutes: at most one alert mail per interval
SECRET_LIMIT = 256 * 1024  # what is read of a secret file for masking (a key file is a few KiB)
MAX_BACKUPS = 100  # each rotation renames every backup while holding the log's lock

REQUIRED = [("passenger", "passenger_user"), ("passenger", "passenger_group"),
            ("passenger", "passenger_python"), ("wsgi", "app")]


class _Settings:
    """Plain settings object: keyword arguments over the class's DEFAULTS (lists and dicts copied),
    compared and shown by value. Not a dataclass: see problems.Problem."""

    DEFAULTS: dict[str, object] = {}

    def __init__(self, **values: object) -> None:
        unknown = set(values) - set(self.DEFAULTS)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected arguments: {', '.join(sorted(unknown))}")
        for name, default in self.DEFAULTS.items():
            value = values.get(name, default)
            setattr(self, name, value.copy() if value is default and isinstance(value, (list, dict)) else value)

    def fields(self) -> dict[str, object]:
        """The settings by name (not the private caches, which start as None)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and self.fields() == other.fields()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses they replace

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self.fields().items()) + ")"


class LoggingConfig(_Settings):
    enabled: bool
    file: str
    max_bytes: int
    backups: int
    level: str
    capture_output: bool
    catch_errors: bool
    debug_token_file: str
    debug_addresses: list[str]
    details_for_everyone: bool  # every visitor sees what opted-in requests see
    redact: list[str]
    path: Path          # resolved against the app root
    starts_path: Path
    DEFAULTS = {"enabled": True, "file": DEFAULT_LOG_FILE, "max_bytes": 1_048_576, "backups": 3, "level": "INFO",
                "capture_output": True, "catch_errors": True, "debug_token_file": "", "debug_addresses": [],
                "details_for_everyone": False, "redact": [], "path": Path("logs/app.log"),
                "starts_path": Path("logs/starts.jsonl")}

    def __init__(self, **values: object) -> None:
        super().__init__(**values)
        self._networks: tuple[list[Any], list[str]] | None = None

    def debug_networks(self) -> tuple[list[Any], list[str]]:
        """debug_addresses parsed (once): (ip networks, entries that are not addresses)."""
        if self._networks is None:
            networks: list[Any] = []
            bad: list[str] = []
            if self.debug_addresses:
                import ipaddress  # only when addresses are configured

                for address in self.debug_addresses:
                    try:
                        networks.append(ipaddress.ip_network(str(address).strip(), strict=False))
                    except ValueError:
                        bad.append(address)
            self._networks = (networks, bad)
        return self._networks


class Config(_Settings):
    app_root: Path
    file: Path
    passenger_user: str
    passenger_group: str
    passenger_python: str
    passenger_app_root: str
    chdir: str
    module: str       # "package.module"
    attribute: str    # "application"
    secret_files: dict[str, str]
    environment: dict[str, str]
    maintenance_page: str
    retry_after: int
    deploy_run: list[str]
    deploy_shared: list[str]  # normalised: "db.sqlite3", "media/" (a trailing / marks a directory)
    check_requests: list[tuple[str, str]]  # [check] requests: (method, path) pairs
    check_host: str
    check_timeout: int
    jobs: dict[str, dict[str, Any]]  # name -> {"schedule", "command", "timeout"} (valid entries only)
    alerts: dict[str, Any]  # [alerts] as given (empty: no alerts); "interval" always set when "mail" is
    logging: LoggingConfig
    DEFAULTS = {"app_root": None, "file": None, "passenger_user": "", "passenger_group": "",
                "passenger_python": "", "passenger_app_root": "", "chdir": "", "module": "", "attribute": "",
                "secret_files": {}, "environment": {}, "maintenance_page": "", "retry_after": 300,
                "deploy_run": [], "deploy_shared": [], "check_requests": [("GET", "/")],
                "check_host": "", "check_timeout": 30, "jobs": {}, "alerts": {}, "logging": None}

    def __init__(self, app_root: Path, file: Path, **values: object) -> None:
        super().__init__(app_root=app_root, file=file, **values)
        if self.logging is None:
            self.logging = LoggingConfig()
        self._secret_cache: dict[str, str | OSError] | None = None

    @property
    def app_spec(self) -> str:
        return f"{self.module}.{self.attribute}" if self.module else ""

    @property
    def chdir_path(self) -> Path:
        return self.app_root / self.chdir if self.chdir else self.app_root

    @property
    def maintenance_page_path(self) -> Path | None:
        return self.app_root / self.maintenance_page if self.maintenance_page else None

    @property
    def venv(self) -> Path | None:
        return Path(self.passenger_python).parent.parent if self.passenger_python else None

    def env_vars(self) -> dict[str, str]:
        """What get_app() adds to os.environ: secret file *paths* and [environment] values."""
        return {**self.secret_files, **self.environment}

    def secret_contents(self) -> dict[str, str | OSError]:
        """Each [secret_files] file's text (at most SECRET_LIMIT bytes), or why it cannot be
        read; read once per Config, through the FIFO-safe reader."""
        if self._secret_cache is None:
            from shim.runtime.files import read_regular

            cache: dict[str, str | OSError] = {}
            for key, path in self.secret_files.items():
                try:
                    data = read_regular(path, SECRET_LIMIT, truncate=True)
                    cache[key] = data.decode("utf-8", "replace")
                except OSError as exc:
                    cache[key] = exc
            self._secret_cache = cache
        return self._secret_cache

    def secret_values(self) -> list[str]:
        """What to mask: the contents of the readable secret files (and the values inside
        structured ones), and [environment] values (see shim.runtime.redact)."""
        from shim.runtime.redact import MIN_MASK_LENGTH, environment_secrets, structured_values

        values = environment_secrets(self.environment)
        for text in self.secret_contents().values():
            if isinstance(text, OSError):
                continue
            for candidate in (text, *structured_values(text)):
                if len(candidate.strip()) >= MIN_MASK_LENGTH:
                    values.append(candidate)
        return sorted(set(values), key=len, reverse=True)


def _suggest(word: str, choices: list[str]) -> str:
    import difflib  # only when something is misspelt

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """Line number of `key = ...` inside [section] (None = top level), for messages."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        m = re.match(r"\[\s*([^\]]+?)\s*\]", stripped)
        if m and not stripped.startswith("[["):
            current = m.group(1).strip().strip('"')
            if section is None and key == current:
                return number
            continue
        if current == section and re.match(rf'"?{re.escape(key)}"?\s*=', stripped):
            return number
    return None


class _Reader:
    def __init__(self, file: Path, text: str):
        self.file = file
        self.text = text
        self.problems: list[Problem] = []

    def where(self, section: str | None, key: str | None = None) -> str:
        name = f"[{section}] {key}" if section and key else (f"[{section}]" if section else key)
        line = _line_of(self.text, section, key) if key else _line_of(self.text, None, section or "")
        return f"{self.file}" + (f" line {line}" if line else "") + f", {name}"

    def add(self, code: str, what: str, where: str, fix: str, severity: str = "error") -> None:
        self.problems.append(Problem(code, what, where, fix, severity=severity))


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string in quotes", int: "a whole number", bool: "true or false",
             list: "a list like [\"a\", \"b\"]"}
    return names.get(expected, str(expected))  # type: ignore[call-overload]


def _toml_type(value: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "true/false",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def parse_config(text: str, file: Path, app_root: Path) -> tuple[Config | None, list[Problem]]:
    """Every problem in config.toml's text, and the Config it describes (None if it is not TOML)."""
    r = _Reader(file, text)
    data = _load_toml(r, text)
    if data is None:
        return None, r.problems
    cfg = Config(app_root=app_root, file=file)
    _drop_nul_strings(r, data, [])
    _check_top_level(r, data)
    values = _section_values(r, data)
    _check_required(r, data, values)
    _parse_passenger(r, cfg, values)
    cfg.chdir = values.get(("wsgi", "chdir"), "")
    _parse_app(r, cfg, values)
    _parse_maintenance(r, cfg, values)
    _parse_deploy(r, cfg, values)
    _parse_check(r, cfg, values)
    _parse_env(r, cfg, data)
    _parse_logging(r, cfg, values)
    _parse_jobs(r, cfg, data)
    _parse_alerts(r, cfg, values)
    return cfg, r.problems


def _load_toml(r: _Reader, text: str) -> dict[str, Any] | None:
    import tomllib  # only when config.toml changed: see shim/runtime/config_cache.py

    try:
        return tomllib.loads(text)
    except RecursionError:  # tomllib recurses per nested [ or {: thousands of them exhaust the stack
        r.add("config-syntax", "config.toml is not valid TOML: arrays or tables are nested too deeply.",
              str(r.file), "Look for a long run of [ or { (a paste gone wrong) and remove it.")
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names line and column but not the text, which may hold a password.
        r.add("config-syntax", f"config.toml is not valid TOML: {exc}.", str(r.file),
              "Fix the line named above. Strings need double quotes, e.g. app = \"mysite.wsgi.application\"; "
              "every [section] header needs both brackets.")
    return None


def _all_keys() -> dict[str, str]:
    return {k: s for s, keys in SCHEMA.items() for k in keys}


def _check_top_level(r: _Reader, data: dict[str, Any]) -> None:
    """Sections that are not tables, unknown sections, keys outside any section."""
    all_keys = _all_keys()
    for name, value in data.items():
        if name in SCHEMA:
            if not isinstance(value, dict):
                r.add("config-not-a-section", f"'{name}' must be a section, not {_toml_type(value)}.",
                      r.where(None, name), f"Write it as a header line [{name}] followed by its keys.")
        elif isinstance(value, dict):
            r.add("config-unknown-section", f"Unknown section [{name}].{_suggest(name, list(SCHEMA))}",
                  r.where(name), f"Rename or remove it. Known sections: {', '.join(SCHEMA)}.")
        else:
            home = all_keys.get(name)
            hint = f" It belongs in section [{home}]." if home else _suggest(name, list(all_keys))
            r.add("config-unknown-key", f"Unknown top-level key '{name}'.{hint}",
                  r.where(None, name), "Put every key under its [section] header (see docs/configuration.md).")


def _section_values(r: _Reader, data: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The keys of the fixed sections that are known and of the right type."""
    all_keys = _all_keys()
    values: dict[tuple[str, str], Any] = {}
    for sname, keys in SCHEMA.items():
        section = data.get(sname, {})
        if not keys or not isinstance(section, dict):
            continue
        severity = "warning" if sname in NOT_AT_START else "error"
        for key, value in section.items():
            if key not in keys:
                home = all_keys.get(key)
                hint = (f" It belongs in section [{home}]." if home and home != sname
                        else _suggest(key, list(keys)))
                r.add("config-unknown-key", f"Unknown key '{key}' in [{sname}].{hint}",
                      r.where(sname, key), f"Rename or remove it. Keys of [{sname}]: {', '.join(keys)}.",
                      severity)
                continue
            expected = keys[key]
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                r.add("config-wrong-type",
                      f"[{sname}] {key} must be {_type_name(expected)}, not {_toml_type(value)}.",
                      r.where(sname, key), f"Write it as {_type_name(expected)}.", severity)
                continue
            values[(sname, key)] = value
    return values


_REQUIRED_FIX = {
    "passenger_user": "Set it to the user the site runs as (the owner of the app root).",
    "passenger_group": "Set it to the project group the site runs as (PassengerGroup).",
    "passenger_python": "Set it to the absolute path of the site venv's python, e.g. "
                        "/path/to/site/venv/bin/python.",
    "app": "Add [wsgi] app = \"package.module.attribute\", e.g. \"mysite.wsgi.application\" for Django "
           "or \"app.app\" for Flask's app.py.",
}


def _check_required(r: _Reader, data: dict[str, Any], values: dict[tuple[str, str], Any]) -> None:
    for sname, key in REQUIRED:
        if (sname, key) in values or any(p.where.endswith(f"[{sname}] {key}") for p in r.problems):
            continue  # present, or already reported (wrong type)
        if (sname, key) == ("wsgi", "app") and "wsgi" not in data:
            what = "config.toml has no [wsgi] section, so wsgi-shim does not know which app to serve."
        else:
            what = f"[{sname}] {key} is missing."
        r.add("config-missing-key", what, f"{r.file}, [{sname}] {key}", _REQUIRED_FIX[key])


def _parse_passenger(r: _Reader, cfg: Config, values: dict[tuple[str, str], Any]) -> None:
    cfg.passenger_user = values.get(("passenger", "passenger_user"), "")
    cfg.passenger_group = values.get(("passenger", "passenger_group"), "")
    cfg.passenger_python = values.get(("passenger", "passenger_python"), "")
    cfg.passenger_app_root = values.get(("passenger", "passenger_app_root"), "")
    if cfg.passenger_python and not os.path.isabs(cfg.passenger_python):
        r.add("config-python-relative", "[passenger] passenger_python must be an absolute path.",
              r.where("passenger", "passenger_python"),
              "Write the full path, e.g. /home/me/site/venv/bin/python (Passenger needs it absolute).")


def _parse_maintenance(r: _Reader, cfg: Config, values: dict[tuple[str, str], Any]) -> None:
    cfg.maintenance_page = values.get(("maintenance", "page"), "")
    retry = values.get(("maintenance", "retry_after"), 300)
    if retry < 0:
        r.add("config-bad-value", "[maintenance] retry_after must not be negative.",
              r.where("maintenance", "retry_after"), "Give the number of seconds, e.g. 300.")
        retry = 300
    cfg.retry_after = retry


def _parse_deploy(r: _Reader, cfg: Config, values: dict[tuple[str, str], Any]) -> None:
    """[deploy] is read by `wsgi-shim deploy` only: its mistakes are warnings here, so that the
    live site keeps serving, and a deploy refuses to start on them (DEPLOY_STOPS)."""
    cfg.deploy_run = values.get(("deploy", "run"), [])
    if not all(isinstance(c, str) and c.strip() for c in cfg.deploy_run):
        r.add("config-bad-value", f"[deploy] run must be a list of commands (non-empty strings){DEPLOY_STOPS}",
              r.where("deploy", "run"), 'Write e.g. run = ["python manage.py migrate"].', "warning")
        cfg.deploy_run = []
    cfg.deploy_shared = []
    for item in values.get(("deploy", "shared"), []):
        name, why = _shared_name(item)
        if not why and any(_nested(name, other) for other in cfg.deploy_shared):
            why = f"{name!r} lies inside or around another entry; share the directory or the paths in it, not both."
        if why:
            r.add("config-bad-value", f"[deploy] shared: {why}{DEPLOY_STOPS}", r.where("deploy", "shared"),
                  'List paths inside the release, e.g. shared = ["db.sqlite3", "media/", "instance/", ".env"] '
                  "(a trailing / marks a directory).", "warning")
        else:
            cfg.deploy_shared.append(name)


DEPLOY_STOPS = " (The site still serves; a deploy will not start until this is fixed.)"


def _parse_check(r: _Reader, cfg: Config, values: dict[tuple[str, str], Any]) -> None:
    """[check] is read by `wsgi-shim check` only: its mistakes are warnings (the site serves on)."""
    requests = []
    for item in values.get(("check", "requests"), ["/"]):
        method, _, path = item.strip().rpartition(" ") if isinstance(item, str) else ("", "", "")
        method = method.strip().upper() or "GET"
        if method not in ("GET", "HEAD") or not path.startswith("/"):
            r.add("config-bad-value", f"[check] requests: {str(item)[:80]!r} is not a GET or HEAD request of a "
                                      "path; it is left out.", r.where("check", "requests"),
                  'Write paths, optionally after GET or HEAD: requests = ["/", "/healthz", "HEAD /feed"].',
                  "warning")
            continue
        requests.append((method, path))
    cfg.check_requests = requests
    cfg.check_host = values.get(("check", "host"), "").strip()
    if any(c in cfg.check_host for c in "/ @?#") :
        r.add("config-bad-value", f"[check] host {cfg.check_host[:80]!r} is not a host name.",
              r.where("check", "host"), 'Write the name visitors use, e.g. host = "www.example.org".', "warning")
        cfg.check_host = ""
    timeout = values.get(("check", "timeout"), 30)
    if timeout <= 0:
        r.add("config-bad-value", "[check] timeout must be a positive number of seconds.",
              r.where("check", "timeout"), "Give the seconds one request may take, e.g. timeout = 30.", "warning")
        timeout = 30
    cfg.check_timeout = timeout


SHARED_RESERVED = (".venv", "config.toml", "passenger_wsgi.py")


def _shared_name(item: object) -> tuple[str, str]:
    """A [deploy] shared entry normalised ("media/", "db.sqlite3"), or why it cannot be one."""
    if not isinstance(item, str) or not item.strip():
        return "", "every entry must be a non-empty string (a path inside the release)."
    is_dir = item.rstrip().endswith("/")
    parts = [p for p in item.strip().strip("/").split("/") if p not in ("", ".")]
    if item.strip().startswith("/"):
        return "", f"{item!r} is an absolute path; name it relative to the release's top level."
    if not parts or ".." in parts:
        return "", f"{item!r} must name a path inside the release (no '..')."
    if parts[0] in SHARED_RESERVED:
        return "", f"{item!r} cannot be shared: {parts[0]} belongs to each release (or to the app root)."
    return "/".join(parts) + ("/" if is_dir else ""), ""


def _nested(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _drop_nul_strings(r: _Reader, table: dict[str, Any], path: list[str]) -> None:
    """A NUL character cannot be in a path or an environment value: report it, drop the key."""
    for key, value in list(table.items()):
        if isinstance(value, dict):
            _drop_nul_strings(r, value, path + [key])
        elif (isinstance(value, str) and "\0" in value) or (
                isinstance(value, list) and any(isinstance(v, str) and "\0" in v for v in value)):
            section = path[0] if path else None
            r.add("config-bad-value", f"{'[' + section + '] ' if section else ''}{key} contains a NUL character.",
                  r.where(section, key), "Remove the \\u0000 escape or the invisible character from the value.")
            del table[key]


def _parse_app(r: _Reader, cfg: Config, values: dict[tuple[str, str], Any]) -> None:
    app = values.get(("wsgi", "app"), "")
    module = values.get(("wsgi", "module"), "")
    if not app:
        return
    if module:  # 0.1.0's older form: module = "pkg.mod", app = "attr"
        spec_module, attribute = module, app
    elif ":" in app:
        spec_module, _, attribute = app.partition(":")
    elif "." in app:
        spec_module, _, attribute = app.rpartition(".")
    else:
        r.add("config-app-format", f"[wsgi] app = \"{app}\" names no module.",
              r.where("wsgi", "app"),
              "Write \"module.attribute\" or \"module:attribute\", e.g. \"app.app\" for app = Flask(...) "
              "in app.py, or \"mysite.wsgi.application\" for Django.")
        return
    if not APP_SPEC.fullmatch(spec_module) or not re.fullmatch(r"[A-Za-z_]\w*", attribute):
        r.add("config-app-format", f"[wsgi] app = \"{app}\" is not a valid Python module.attribute name.",
              r.where("wsgi", "app"),
              "Use dots between package names and no file suffix: \"mysite.wsgi.application\", "
              "not \"mysite/wsgi.py\".")
        return
    cfg.module, cfg.attribute = spec_module, attribute


def _parse_env(r: _Reader, cfg: Config, data: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for sname in ("secret_files", "environment"):
        body = data.get(sname, {})
        if not isinstance(body, dict):
            continue
        target = cfg.secret_files if sname == "secret_files" else cfg.environment
        for key, value in body.items():
            if not ENV_NAME.fullmatch(key):
                r.add("config-env-name", f"'{key}' in [{sname}] is not a valid environment variable name.",
                      r.where(sname, key), "Use letters, digits and _ only, not starting with a digit.")
                continue
            if not isinstance(value, str):
                r.add("config-wrong-type", f"[{sname}] {key} must be a string in quotes, not {_toml_type(value)}.",
                      r.where(sname, key), "Put the value in double quotes; environment values are strings.")
                continue
            if key in seen:
                r.add("config-env-duplicate", f"{key} is set in both [{seen[key]}] and [{sname}].",
                      r.where(sname, key), "Keep it in one section only.")
                continue
            seen[key] = sname
            target[key] = value


def _parse_logging(r: _Reader, cfg: Config, values: dict[tuple[str, str], Any]) -> None:
    lc = LoggingConfig()
    for key in SCHEMA["logging"]:
        if ("logging", key) in values:
            setattr(lc, key, values[("logging", key)])
    if lc.level.upper() not in LEVELS:
        r.add("config-bad-value", f"[logging] level must be one of {', '.join(LEVELS)}.",
              r.where("logging", "level"), "Write e.g. level = \"INFO\".")
        lc.level = "INFO"
    lc.level = lc.level.upper()
    for key, minimum in (("max_bytes", 4096), ("backups", 0)):
        if getattr(lc, key) < minimum:
            r.add("config-bad-value", f"[logging] {key} must be at least {minimum}.",
                  r.where("logging", key), f"Use a value of {minimum} or more.")
            setattr(lc, key, LoggingConfig.DEFAULTS[key])
    if lc.backups > MAX_BACKUPS:
        r.add("config-bad-value", f"[logging] backups must be at most {MAX_BACKUPS}.",
              r.where("logging", "backups"),
              f"Use {MAX_BACKUPS} or fewer, and raise max_bytes to keep more log (every rotation "
              "renames each backup while the other processes wait).")
        lc.backups = MAX_BACKUPS
    for key in ("debug_addresses", "redact"):
        items = getattr(lc, key)
        if not all(isinstance(i, str) for i in items):
            r.add("config-wrong-type", f"[logging] {key} must be a list of strings.",
                  r.where("logging", key), "Quote every entry, e.g. [\"203.0.113.7\"].")
            setattr(lc, key, [])
    for address in lc.debug_networks()[1]:
        r.add("config-bad-value", f"[logging] debug_addresses entry '{address}' is not an IP address or network.",
              r.where("logging", "debug_addresses"), "Write addresses like \"203.0.113.7\" or \"10.0.0.0/8\".")
    for pattern in lc.redact:
        try:
            re.compile(pattern)
        except re.error as exc:
            r.add("config-bad-value", f"[logging] redact pattern is not a valid regular expression: {exc}.",
                  r.where("logging", "redact"), "Fix the pattern (Python `re` syntax).")
    if lc.debug_token_file and not os.path.isabs(lc.debug_token_file):
        r.add("config-bad-value", "[logging] debug_token_file must be an absolute path.",
              r.where("logging", "debug_token_file"), "Write the full path of a file only you can read.")
    lc.path, lc.starts_path = log_paths(cfg.app_root, lc.file)
    cfg.logging = lc


JOBS_ONLY = " (The site still serves; jobs and alerts need this fixed.)"


def _parse_jobs(r: _Reader, cfg: Config, data: dict[str, Any]) -> None:
    """[jobs.NAME] tables: keys and types only. Whether the schedule parses and the program
    exists is checked by `wsgi-shim check` (shim/ops/jobs/checks.py), not at every start."""
    jobs = data.get("jobs", {})
    if not isinstance(jobs, dict):
        return  # reported by _check_top_level
    for name, body in jobs.items():
        where = r.where(f"jobs.{name}")
        if not isinstance(body, dict):
            r.add("job-bad", f"[jobs] {name} must be a table [jobs.{name}] with schedule and command, not "
                             f"{_toml_type(body)}.{JOBS_ONLY}", where,
                  f'Write it as\n[jobs.{name}]\nschedule = "0 3 * * *"\ncommand = "python manage.py clearsessions"',
                  "warning")
            continue
        if not JOB_NAME.fullmatch(name):
            r.add("job-bad", f"Job name {name!r} may only hold letters, digits, - and _ (at most 64, starting "
                             f"with a letter or digit).{JOBS_ONLY}", where, "Rename the job.", "warning")
            continue
        job = _job_values(r, name, body)
        if job is not None:
            cfg.jobs[name] = job


def _job_values(r: _Reader, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
    section, ok = f"jobs.{name}", True
    for key, value in body.items():
        expected = JOB_KEYS.get(key)
        if expected is None:
            r.add("config-unknown-key", f"Unknown key '{key}' in [{section}].{_suggest(key, list(JOB_KEYS))}"
                                        f"{JOBS_ONLY}", r.where(section, key),
                  f"Rename or remove it. Keys of a job: {', '.join(JOB_KEYS)}.", "warning")
            ok = False
        elif not isinstance(value, expected) or isinstance(value, bool):
            r.add("config-wrong-type", f"[{section}] {key} must be {_type_name(expected)}, not "
                                       f"{_toml_type(value)}.{JOBS_ONLY}", r.where(section, key),
                  f"Write it as {_type_name(expected)}.", "warning")
            ok = False
    for key in ("schedule", "command"):
        if key not in body:
            r.add("job-bad", f"[{section}] has no {key}.{JOBS_ONLY}", r.where(section),
                  'Every job needs schedule (cron syntax, e.g. "0 3 * * *") and command '
                  '(e.g. "python manage.py clearsessions").', "warning")
            ok = False
    if isinstance(body.get("timeout"), int) and not isinstance(body["timeout"], bool) and body["timeout"] <= 0:
        r.add("config-bad-value", f"[{section}] timeout must be a positive number of seconds.{JOBS_ONLY}",
              r.where(section, "timeout"), "Write e.g. timeout = 600, or leave it out for no limit.", "warning")
        ok = False
    if not ok:
        return None
    return {"schedule": body["schedule"].strip(), "command": body["command"], "timeout": body.get("timeout", 0)}


def _parse_alerts(r: _Reader, cfg: Config, values: dict[tuple[str, str], Any]) -> None:
    alerts = {key: values[("alerts", key)] for key in SCHEMA["alerts"] if ("alerts", key) in values}
    if not alerts:
        return
    if not alerts.get("mail"):
        r.add("alerts-bad", f"[alerts] has no mail address.{JOBS_ONLY}", r.where("alerts"),
              'Write e.g. mail = "owner@example.org" (several: separated by commas).', "warning")
        return
    alerts.setdefault("interval", ALERT_INTERVAL)
    if alerts["interval"] < 1:
        r.add("config-bad-value", f"[alerts] interval must be at least 1 (minutes).{JOBS_ONLY}",
              r.where("alerts", "interval"), f"Write e.g. interval = {ALERT_INTERVAL}.", "warning")
        alerts["interval"] = ALERT_INTERVAL
    cfg.alerts = alerts


CONFIG_LIMIT = 1024 * 1024  # a config.toml is a few KiB; more is a mistake (or /dev/zero)


def load_config(app_root: Path) -> tuple[Config | None, list[Problem]]:
    """Read app_root/config.toml. Returns (None, problems) if it cannot be read at all."""
    from shim.runtime.files import NotReadable, read_regular

    file = app_root / "config.toml"
    try:
        raw = read_regular(file, CONFIG_LIMIT)
    except FileNotFoundError:
        from shim.runtime import advice

        return None, [Problem("config-missing", "config.toml does not exist.", str(file),
                              "Restore it from your backup, or write a new one from the template that "
                              f"`{advice.command('install', '/tmp/new-site', task_args=())}` writes into "
                              "/tmp/new-site/www-approot/config.toml.")]
    except PermissionError:
        return None, [Problem("config-unreadable", "config.toml cannot be read by the site's user.", str(file),
                              "Make it readable by its owner: chmod 600 config.toml (it must not be world-readable).")]
    except IsADirectoryError:
        return None, [Problem("config-missing", "config.toml is a directory, not a file.", str(file),
                              "Remove the directory and create the file (`wsgi-shim install` writes a template).")]
    except NotReadable as exc:
        return None, [Problem("config-not-file", f"config.toml {exc.reason}.", str(file),
                              f"Replace it with a regular file: rm {file} and restore config.toml from your "
                              "backup (`wsgi-shim install` writes a template).")]
    except OSError as exc:
        return None, [Problem("config-unreadable", f"config.toml cannot be read: {exc.strerror}.", str(file),
                              "Check the file system and the file's permissions.")]
    if raw.startswith(b"\xef\xbb\xbf"):
        return None, [Problem("config-bom", "config.toml starts with a UTF-8 byte order mark (BOM), which "
                                            "TOML does not allow.", f"{file} line 1",
                              "Save the file as UTF-8 without BOM (in Notepad: 'UTF-8', not 'UTF-8 with BOM'; "
                              "or run: sed -i '1s/^\\xEF\\xBB\\xBF//' config.toml).")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [Problem("config-encoding", f"config.toml is not UTF-8 text (bad byte at line {line}).",
                              f"{file} line {line}",
                              "Save the file as UTF-8 (most editors: 'Save with encoding').")]
    return parse_config(text, file, app_root)
