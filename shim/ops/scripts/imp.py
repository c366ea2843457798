"""imp: what Phusion Passenger's WSGI loader before 6.0.19 needs of the old imp module.

Python 3.12 removed imp; Passenger's wsgi-loader.py before 6.0.19 imports it and loads the
startup file with imp.load_source("passenger_wsgi", path), so an app on Python 3.12+ dies there
with "No module named 'imp'". wsgi-shim's build-python and venv install this file (into the
built Python's standard library, or into the site venv) on such a host; see
docs/building-python.md. It provides load_source() only, on importlib.
"""

import importlib.machinery
import importlib.util
import sys

WSGI_SHIM_IMP_COMPAT = 1  # how build-python, venv and "wsgi-shim check" know this file


def load_source(name, pathname, file=None):
    """Run the Python source file PATHNAME as module NAME, whatever its suffix; the module goes
    into sys.modules (and leaves it again if running it raises). FILE is ignored."""
    loader = importlib.machinery.SourceFileLoader(name, pathname)
    spec = importlib.util.spec_from_file_location(name, pathname, loader=loader)
    module = sys.modules.get(name)
    if module is not None:  # imp ran the file again inside the module already there
        module.__spec__, module.__loader__, module.__file__ = spec, loader, pathname
        loader.exec_module(module)
        return module
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return sys.modules.get(name, module)


def __getattr__(attribute):
    raise AttributeError(
        f"module 'imp' has no attribute {attribute!r}: this is wsgi-shim's compatibility module "
        "for Passenger's loader, which provides only imp.load_source; Python 3.12 removed the rest "
        "of imp (use importlib instead)")
