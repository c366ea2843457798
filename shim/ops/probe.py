"""Load a site's passenger_wsgi.py exactly as Passenger 6 does and report what it got.

Run by `wsgi-shim check` with the site's own Python (passenger_python), by file path, so it
works even when that venv lacks wsgi-shim:  python probe.py APP_ROOT  -> one JSON object on
stdout. With WSGI_SHIM_PROBE=1 the shim imports the app but records nothing and ignores
maintenance mode. Standard library only; imports nothing from shim at module level.
"""

import json
import os
import sys
import traceback


def load_source(name: str, path: str):
    """What imp.load_source (used by Passenger 6.0.17's loader) does, without `imp`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(app_root: str) -> dict:
    out = os.fdopen(os.dup(1), "w")  # the shim may redirect sys.stdout into the app log
    result: dict = {"loaded": False, "python_version": list(sys.version_info[:3])}
    try:
        os.chdir(app_root)
        sys.path.insert(0, os.getcwd())  # what Passenger's wsgi-loader.py does
        module = load_source("passenger_wsgi", "passenger_wsgi.py")
        result["loaded"] = True
        result["callable"] = callable(getattr(module, "application", None))
        # shim.runtime.loader since 0.3; shim.loader in a venv that holds an older wsgi-shim
        loader = sys.modules.get("shim.runtime.loader") or sys.modules.get("shim.loader")
        result["shim_imported"] = "shim" in sys.modules
        start = getattr(loader, "LAST_START", None)
        if start is not None:
            result["state"] = start.state
            result["problems"] = [p.as_dict() for p in start.problems]
    except BaseException as exc:  # noqa: BLE001 - report whatever Passenger would have died of
        result["loader_error"] = "".join(traceback.format_exception(exc))
        result["exception"] = f"{exc.__class__.__name__}: {exc}"
        result["missing_module"] = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    out.write(json.dumps(result))
    out.flush()
    return result


if __name__ == "__main__":
    # Run by path, Python put this file's directory first on sys.path; Passenger would not, and
    # its modules must not shadow the app's top-level names.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    os.environ["WSGI_SHIM_PROBE"] = "1"
    main(sys.argv[1])
