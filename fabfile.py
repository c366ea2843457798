"""`fab --list` / `fab -H user@host TASK`: the same tasks as tasks.py (fab looks for a
collection named fabfile, not tasks). Settings: fabric.yaml, key `shim`."""

from shim.tasks import ns

__all__ = ["ns"]
