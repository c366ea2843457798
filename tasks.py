"""`inv --list`: the wsgi-shim tasks (shim/tasks/). Settings: invoke.yaml, key `shim`."""

from shim.tasks import ns

__all__ = ["ns"]
