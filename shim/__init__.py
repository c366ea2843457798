"""wsgi-shim: start-up checks, readable error pages and logs for Passenger-hosted Python sites.

A site's passenger_wsgi.py is just::

    import shim
    application = shim.get_app()

Importing this package is cheap: the checks and the loader are imported by get_app() only.
"""

__version__ = "0.2.0"


def get_app(app_root=None):
    """Return the WSGI callable Passenger should serve.

    The site's app when all is well, a maintenance page while tmp/maint.txt exists, or an
    error page listing every problem found. Never raises.
    """
    from shim.runtime.loader import get_app as _get_app

    return _get_app(app_root)
