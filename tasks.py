"""`inv --list`: the wsgi-shim tasks (shim/tasks/). Settings: invoke.yaml, key `shim`."""

from bench.tasks import bench
from shim.tasks import ns

ns.add_task(bench)  # this checkout's benchmarks (bench/run.py); not in the shipped shim.tasks

__all__ = ["ns"]
