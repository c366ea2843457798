"""Version thresholds, in one place: which Passenger can load which Python.

Used by `wsgi-shim check` (shim/ops/checking.py) and by build-python (shim/ops/buildpython.py).
"""

from __future__ import annotations

# Passenger's Python loader before 6.0.19 imports `imp`, which Python 3.12 removed: on such a
# Passenger an app on Python 3.12+ dies in the loader, before wsgi-shim runs, unless the Python
# has wsgi-shim's `imp` compatibility module (shim/ops/scripts/imp.py; build-python and venv
# install it, `wsgi-shim check` looks for it).
PASSENGER_IMP_FIXED: tuple[int, int, int] = (6, 0, 19)
PYTHON_WITHOUT_IMP: tuple[int, int] = (3, 12)


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def needs_imp_free_passenger(python: tuple[int, ...]) -> bool:
    """True when an app on this Python needs Passenger PASSENGER_IMP_FIXED or newer, or
    else the imp compatibility module (this Python has no imp of its own)."""
    return tuple(python[:2]) >= PYTHON_WITHOUT_IMP
