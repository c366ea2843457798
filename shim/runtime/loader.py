"""get_app(): check the site, then hand Passenger the app, a maintenance page or an error page.

Nothing raised here, by our code or the user's, may reach Passenger: its own page for that is
the generic "We're sorry, but something went wrong", with details only in a log the site's
developer cannot read.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from shim import __version__
from shim.runtime import config_cache, records
from shim.runtime.checks import maintenance_state, runtime_problems
from shim.runtime.config import Config, LoggingConfig, load_config
from shim.runtime.layout import Site, log_paths
from shim.runtime.permissions import name_of_group, name_of_user
from shim.runtime.problems import Problem
from shim.runtime.redact import Redactor, secret_env_values

PROBE_ENV = "WSGI_SHIM_PROBE"  # set by `wsgi-shim check`: import only, record nothing


# A healthy start imports only what it uses: pages, traceback, datetime and the like are imported
# on the paths that need them (tests/test_layers.py keeps it so; bench/startup.py measures it).


class StartResult:
    def __init__(self, state: str, problems: list[Problem] | None = None, app=None) -> None:
        self.state = state  # "app" | "maintenance" | "error"
        self.problems = problems if problems is not None else []
        self.app = app  # the app itself, without the middleware: `check` sends it its requests

    def __repr__(self) -> str:
        return f"StartResult(state={self.state!r}, problems={self.problems!r})"


LAST_START: StartResult | None = None  # read by `wsgi-shim check` through shim/ops/probe.py


def process_facts(app_root: Path) -> dict[str, str]:
    """What the owner's start-up page tells about the process (never a visitor's)."""
    import time

    return {"user": name_of_user(os.geteuid()), "group": name_of_group(os.getegid()),
            "python": f"{sys.executable} ({sys.version.split()[0]})",
            "app root": str(app_root), "pid": str(os.getpid()),
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "wsgi-shim": __version__}


def default_logging(app_root: Path) -> LoggingConfig:
    """Where the log goes when config.toml cannot be read: its default place."""
    cfg = LoggingConfig()
    cfg.path, cfg.starts_path = log_paths(app_root, cfg.file)
    return cfg


def get_app(app_root: str | Path | None = None):
    root = Path(app_root) if app_root else Path(os.getcwd())
    try:
        return _get_app(root)
    except BaseException as exc:  # noqa: BLE001 - the last line of defence; see module docstring
        if isinstance(exc, KeyboardInterrupt):
            raise
        import traceback

        try:
            problem = Problem("shim-internal", f"wsgi-shim itself failed: {exc.__class__.__name__}: {exc}.",
                              "wsgi-shim", "Please report this with the traceback below; meanwhile check "
                                           "config.toml with `wsgi-shim check SITE`.",
                              "".join(traceback.format_exception(exc)))
            return _finish("error", [problem], root, None, None)
        except Exception:  # noqa: BLE001 - not even the error page: still not Passenger's
            from shim.runtime import pages

            return pages.fallback_page()


def _get_app(app_root: Path):
    probe = os.environ.get(PROBE_ENV) == "1"
    site = Site.from_approot(app_root)
    # `wsgi-shim check` (the probe) always parses afresh; a real start may use the parsed cache.
    cfg, problems = load_config(app_root) if probe else config_cache.load(app_root)
    in_maintenance, tmp_problems = maintenance_state(site.maint_txt)
    in_maintenance = in_maintenance and not probe
    problems += tmp_problems
    stamp = None if probe else records.restart_stamp(site.restart_txt)
    if not probe:  # a start that never ends (an import stuck on a network call) is seen begun
        starts = (cfg.logging if cfg is not None else default_logging(app_root)).starts_path
        records.record_start(starts, records.STARTING, [], {"restart_stamp": stamp})
    applog = None
    if cfg is not None:
        problems += runtime_problems(cfg, check_identity=not probe)
    redact = site_redactor(cfg)  # the one redactor of this process, passed down
    logging_cfg = cfg.logging if cfg is not None else default_logging(app_root)
    if logging_cfg.enabled and not probe:
        from shim.runtime import applog as applog_module  # only when logging is on

        applog, log_problems = applog_module.setup(logging_cfg, redact)
        problems += log_problems
    if in_maintenance:
        return _finish("maintenance", problems, app_root, cfg, applog, redact=redact, stamp=stamp)
    if cfg is None or any(p.blocking for p in problems):
        return _finish("error", problems, app_root, cfg, applog, redact=redact, stamp=stamp)
    watch = None
    if applog is not None:  # where a long import is stuck goes to the app log before Passenger kills it
        from shim.runtime.slowstart import SlowStartWatch

        watch = SlowStartWatch(applog, redact).start()
    try:
        app, import_problems = import_app(cfg, redact)
    finally:
        if watch is not None:
            watch.cancel()
    if import_problems:
        return _finish("error", problems + import_problems, app_root, cfg, applog, redact=redact, stamp=stamp)
    raw = app
    if cfg.logging.enabled and cfg.logging.catch_errors:
        from shim.runtime import diagnostics  # without a log it still gives visitors the error-id page

        app = diagnostics.wrap(app, cfg.logging, applog, redact)
    return _finish("app", problems, app_root, cfg, applog, app, redact=redact, stamp=stamp, raw=raw)


def site_redactor(cfg: Config | None) -> Redactor:
    """The process's redactor: secret files, [environment] values, secret-named variables of
    the process and [logging] redact patterns. Cheap: nothing is compiled until first use."""
    secrets = cfg.secret_values() if cfg is not None else []
    return Redactor(secrets + secret_env_values(), cfg.logging.redact if cfg is not None else ())


def _finish(state, problems, app_root, cfg: Config | None, applog, app=None, redact=None, stamp=None,
            raw=None):
    global LAST_START
    if redact is not None and problems:  # nothing unmasked reaches a record, the log or a page
        problems = redact.problems(problems)
    LAST_START = StartResult(state, problems, raw)
    error_id = os.urandom(5).hex() if state == "error" else ""  # as a request error's id
    if os.environ.get(PROBE_ENV) != "1":
        starts = (cfg.logging if cfg else default_logging(app_root)).starts_path
        facts = {"user": name_of_user(os.geteuid()), "group": name_of_group(os.getegid()),
                 "python": sys.executable, "restart_stamp": stamp}
        if cfg is not None:  # which release this process runs (a deploy's watch tells them apart)
            facts["chdir"] = os.path.realpath(cfg.chdir_path)
        if error_id:
            facts["error_id"] = error_id
        if os.environ.get("WSGI_SHIM_PREVIEW") == "1":  # not the site's own start: check skips it
            facts["preview"] = "1"
        records.record_start(starts, state, problems, facts)
        if applog is not None:
            applog.startup(state, problems, error_id)
    if state == "app":
        return app
    if state == "maintenance":
        return _maintenance(cfg, app_root)
    return start_error_page(problems, app_root, cfg, error_id, redact)


def start_error_page(problems: list[Problem], app_root: Path, cfg: Config | None, error_id: str,
                     redact: Redactor | None = None):
    """The start-up error page: plain for visitors, the full page for opted-in requests (by
    token, address, or everyone when the site says so); nobody is opted in when config.toml
    could not be read, except, in `wsgi-shim serve`, requests that passed the preview's gate
    with its token (never an address: every user of a shared machine can use 127.0.0.1)."""
    from shim.runtime import optin, pages

    preview = os.environ.get("WSGI_SHIM_PREVIEW") == "1"
    opt_in, _ = optin.from_config(cfg.logging if cfg is not None else None, preview=preview)
    if redact is None:
        redact = site_redactor(cfg)
    if opt_in.token:
        redact.add([opt_in.token.decode("utf-8", "replace")])
    return pages.error_page(problems, process_facts(app_root), error_id, opt_in, redact)


def _maintenance(cfg: Config | None, app_root: Path):
    from shim.runtime import pages

    custom = None
    if cfg is not None and cfg.maintenance_page_path is not None:
        from shim.runtime.checks import read_maintenance_page

        try:  # never a FIFO, a device, a huge file, config.toml or a secret file
            custom = read_maintenance_page(cfg)
        except OSError:
            custom = None  # reported by checks.maintenance_problems; the default page is shown
    since = None
    try:
        since = os.stat(Site.from_approot(app_root).maint_txt).st_mtime
    except OSError:
        pass
    return pages.maintenance_page(custom, cfg.retry_after if cfg else 300, since)


def import_app(cfg: Config, redact: Redactor | None = None):
    """Import the app with config's environment, cwd and sys.path; undo all of it on failure."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    chdir = str(cfg.chdir_path)
    try:
        os.environ.update(cfg.env_vars())
        # Django needs the cwd to be the project (0.1.0 did this too).
        os.chdir(chdir)
        sys.path[:] = [chdir] + [p for p in sys.path if p not in ("", chdir)]
        module = importlib.import_module(cfg.module)
        try:
            app = getattr(module, cfg.attribute)
        except AttributeError:
            import difflib

            names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
            close = difflib.get_close_matches(cfg.attribute, names, n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            fix = (f"Correct [wsgi] app. Callables in {cfg.module}: {', '.join(names[:12]) or 'none'}.")
            return None, _rollback(saved_env, saved_cwd, saved_path, saved_modules, [Problem(
                "app-attribute-missing", f"Module '{cfg.module}' has no attribute '{cfg.attribute}'.{hint}",
                f"{getattr(module, '__file__', cfg.module)}; {cfg.file}, [wsgi] app", fix)])
        if not callable(app):
            return None, _rollback(saved_env, saved_cwd, saved_path, saved_modules, [Problem(
                "app-not-callable", f"{cfg.app_spec} is {type(app).__name__}, not a WSGI callable.",
                f"{cfg.file}, [wsgi] app",
                "Point [wsgi] app at the WSGI application object itself (Flask: the Flask(...) instance; "
                "Django: wsgi.application).")])
        return app, []
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure of the user's import
        if not isinstance(redact, Redactor):  # a caller of the old signature (list of secrets)
            redact = Redactor(list(redact or ()) + secret_env_values(), cfg.logging.redact)
        problem = describe_import_failure(exc, cfg, redact)
        return None, _rollback(saved_env, saved_cwd, saved_path, saved_modules, [problem])


def _rollback(env, cwd, path, modules, problems):
    os.environ.clear()
    os.environ.update(env)
    try:
        os.chdir(cwd)
    except OSError:
        pass
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    return problems


def _user_frame(exc: BaseException, cfg: Config | None = None) -> str:
    """file:line of the innermost frame in the site's own code (shim/runtime/importhints.py)."""
    from shim.runtime.importhints import user_frame

    return user_frame(exc, cfg)


def format_traceback(exc: BaseException, redact) -> str:
    """The traceback without importlib's and wsgi-shim's own frames, secrets masked."""
    import traceback

    here = os.path.dirname(__file__)
    noise = (here, "<frozen", os.path.dirname(importlib.__file__))
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not f.filename.startswith(noise)])
    return redact("".join(te.format()))


def describe_import_failure(exc: BaseException, cfg: Config, redact) -> Problem:
    """Which kind of failure, where in the user's code, and the fix; secrets masked by redact."""
    detail = format_traceback(exc, redact)
    from shim.runtime import importhints  # only when the import failed

    where = _user_frame(exc, cfg) or f"{cfg.file}, [wsgi] app"
    spec = cfg.app_spec
    message = redact(str(exc))
    if isinstance(exc, ModuleNotFoundError):
        missing = exc.name or ""
        if missing and (cfg.module == missing or cfg.module.startswith(missing + ".")):
            try:
                entries = sorted(e for e in os.listdir(cfg.chdir_path) if not e.startswith((".", "_")))
            except OSError:
                entries = []
            names = [e[:-3] if e.endswith(".py") else e for e in entries]
            import difflib

            close = difflib.get_close_matches(missing.split(".")[-1], names, n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            return Problem("app-module-missing",
                           f"Python cannot find module '{missing}' (from [wsgi] app = \"{spec}\").{hint}",
                           f"{cfg.file}, [wsgi] app; looked in {cfg.chdir_path}",
                           "Correct [wsgi] app or [wsgi] chdir (the directory that contains the top-level "
                           f"package). It holds: {', '.join(entries[:15]) or 'nothing'}.", detail)
        own = importhints.module_not_found_problem(missing, cfg, where, detail) if missing else None
        if own is not None:
            return own
        return Problem("app-dependency-missing",
                       f"Importing {cfg.module} needs module '{missing}', which is not installed in the site's venv.",
                       where, f"Install it into the venv Passenger uses: {Path(sys.prefix)}/bin/pip install "
                              f"<the package that provides '{missing.split('.')[0]}'>.", detail)
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename} line {exc.lineno}" if exc.filename else where
        return Problem("app-syntax-error", f"{exc.__class__.__name__} in your code: {exc.msg}.", where,
                       "Fix the line shown; `python -m py_compile FILE` checks a file before you deploy.", detail)
    if isinstance(exc, PermissionError):
        return Problem("app-permission", f"Permission denied while importing {cfg.module}: {exc.filename or message}.",
                       where, "The site's user must be able to read every file of the app (and search every "
                              "directory): chmod u+r files, u+x directories.", detail)
    env_name = importhints.environ_key(exc)
    if env_name is not None:
        return importhints.env_missing_problem(env_name, cfg, where, detail)
    if isinstance(exc, SystemExit):
        return Problem("app-exit", f"Importing {cfg.module} called sys.exit({exc.code!r}).", where,
                       "Do not exit at import time; guard script code with if __name__ == \"__main__\":.", detail)
    if isinstance(exc, ImportError):
        return Problem("app-import-error", f"ImportError while importing {cfg.module}: {message}", where,
                       "Check the import named in the traceback: a missing name, a circular import or a "
                       "package built for another Python.", detail)
    return Problem("app-exception",
                   f"{exc.__class__.__name__} raised while importing {cfg.module}: {message}", where,
                   "Fix the error at the place shown in the traceback (code that runs at import time, e.g. "
                   "settings or module-level setup).", detail)
