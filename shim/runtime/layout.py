"""Where everything of a site lives.

    SITE/                     the site directory (wsgi-shim install SITE)
      www-approot/            PassengerAppRoot (-a/--approot)
        passenger_wsgi.py     `import shim; application = shim.get_app()`
        config.toml           the site's settings (see docs/configuration.md)
        tmp/                  PassengerRestartDir
          restart.txt         touched by `wsgi-shim restart`
          maint.txt           exists = maintenance mode (`wsgi-shim maint on|off`)
        logs/                 written by the app process (issue: request-time diagnostics)
          app.log             stdout, stderr, warnings, logging, tracebacks
          starts.jsonl        one JSON line per process start: pid, time, state, problems
          jobs.jsonl          one JSON line per `wsgi-shim run --job` (time, exit, duration)
          alerts.json         what `wsgi-shim alert` last reported, and when it last mailed
          run-NAME.lock       held by `wsgi-shim run --lock NAME` (and --job NAME) while it runs
      www-docroot/            DocumentRoot (-d/--docroot)
      venv/                   the site's virtual environment (default; outside the app root)
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_APPROOT = "www-approot"
DEFAULT_DOCROOT = "www-docroot"
DEFAULT_LOG_FILE = "logs/app.log"  # [logging] file
STARTS_FILE = "starts.jsonl"
JOBS_FILE = "jobs.jsonl"
ALERTS_FILE = "alerts.json"


def log_paths(app_root: Path, file: str = DEFAULT_LOG_FILE) -> tuple[Path, Path]:
    """The one rule for where a site logs: the app log at [logging] file (relative to the app
    root; default logs/app.log), the start records (starts.jsonl) beside it."""
    log = app_root / file
    return log, log.parent / STARTS_FILE


def beside_log(log: Path, name: str) -> Path:
    """A file of the operator side kept with the logs (JOBS_FILE, ALERTS_FILE, run locks):
    beside the app log wherever [logging] file puts it, so one rule places them all."""
    return log.parent / name


class Site:
    """A site's directories (immutable, compared by value). A plain class: see problems.Problem."""

    __slots__ = ("site", "approot_name", "docroot_name")
    site: Path
    approot_name: str
    docroot_name: str

    def __init__(self, site: Path, approot_name: str = DEFAULT_APPROOT,
                 docroot_name: str = DEFAULT_DOCROOT) -> None:
        object.__setattr__(self, "site", site)
        object.__setattr__(self, "approot_name", approot_name)
        object.__setattr__(self, "docroot_name", docroot_name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Site is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[type, tuple[Path, str, str]]:
        return Site, self._key()

    def __repr__(self) -> str:
        return f"Site(site={self.site!r}, approot_name={self.approot_name!r}, docroot_name={self.docroot_name!r})"

    def _key(self) -> tuple[Path, str, str]:
        return self.site, self.approot_name, self.docroot_name

    @classmethod
    def locate(cls, path: str | Path, approot: str = DEFAULT_APPROOT,
               docroot: str = DEFAULT_DOCROOT) -> "Site":
        """SITE may name the site directory or, for convenience, its app root itself."""
        p = Path(path)
        if (p / "config.toml").exists() or (p / "passenger_wsgi.py").exists():
            return cls(p.parent, p.name, docroot)
        return cls(p, approot, docroot)

    @classmethod
    def from_approot(cls, approot: str | Path) -> "Site":
        p = Path(approot)
        return cls(p.parent, p.name)

    @property
    def approot(self) -> Path:
        return self.site / self.approot_name

    @property
    def docroot(self) -> Path:
        return self.site / self.docroot_name

    @property
    def config_toml(self) -> Path:
        return self.approot / "config.toml"

    @property
    def passenger_wsgi(self) -> Path:
        return self.approot / "passenger_wsgi.py"

    @property
    def tmp(self) -> Path:
        return self.approot / "tmp"

    @property
    def restart_txt(self) -> Path:
        return self.tmp / "restart.txt"

    @property
    def maint_txt(self) -> Path:
        return self.tmp / "maint.txt"

    @property
    def default_logs(self) -> Path:
        return self.approot / "logs"

    @property
    def default_venv(self) -> Path:
        return self.site / "venv"
