# wsgi.py: Radicale's WSGI application with the configuration file that ships with the code
# (radicale.conf beside this file). Radicale reads it at its first request, not at import:
# only a request shows that it is missing.
import os

os.environ["RADICALE_CONFIG"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "radicale.conf")

from radicale import application  # noqa: E402,F401
