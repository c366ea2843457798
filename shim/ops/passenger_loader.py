"""What Phusion Passenger 6's wsgi-loader.py does before it serves a WSGI app: the one emulation
of it, shared by `wsgi-shim check` (probe.py), the preview (`wsgi-shim serve`), the test suite
(tests/support/passenger_harness.py) and the benchmarks (bench/startup.py).

Mirrors /usr/share/passenger/helper-scripts/wsgi-loader.py (initialize_logging, load_app) plus what
Passenger's spawn sets up around it: IN_PASSENGER=1 in the environment (its login-shell wrapper)
and the app root as the working directory. Passenger 6.0.17 loads the startup file with
imp.load_source, which Python 3.12 removed; load_source() below does what it did.

Standard library only and never imports shim: it runs in the site's own Python, whose venv may
lack wsgi-shim, imported by file path (importlib.util.spec_from_file_location). Importing it
has no side effects.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

STARTUP_FILE = "passenger_wsgi.py"


def drop_script_dir(script: str | None = None) -> None:
    """Python puts a script's directory (or, for -c, '') first on sys.path; Passenger's loader
    would not give the app that entry, so remove it. SCRIPT: the script's path, None for -c."""
    first = sys.path[0] if sys.path else None
    if first == "" or (script and first is not None
                       and os.path.abspath(first) == os.path.dirname(os.path.abspath(script))):
        del sys.path[0]


def initialize_logging() -> None:
    """wsgi-loader.py's initialize_logging()."""
    logging.basicConfig(level=logging.WARNING,
                        format="[ pid=%(process)d, time=%(asctime)s ]: %(message)s")
    logging.captureWarnings(True)


def load_source(name: str, path: str):
    """imp.load_source(name, path), as Passenger 6.0.17 calls it, without `imp`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_app(startup_file: str = STARTUP_FILE):
    """wsgi-loader.py's load_app(): cwd first on sys.path, the startup file as `passenger_wsgi`."""
    sys.path.insert(0, os.getcwd())
    return load_source("passenger_wsgi", startup_file)


def start(app_root: str, startup_file: str = STARTUP_FILE):
    """All of it, in Passenger's order; returns the loaded `passenger_wsgi` module.

    Raises whatever loading raises: under Passenger that is its generic error page."""
    initialize_logging()
    os.environ["IN_PASSENGER"] = "1"
    os.chdir(app_root)
    return load_app(startup_file)
