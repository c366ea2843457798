"""Signal handlers installed for the length of a `with` block, then put back as they were."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

# What a dropped SSH session (SIGHUP) or a CI timeout / `kill` (SIGTERM) sends.
TERMINATING = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def handled(signals: Iterable[signal.Signals], handler: Callable | int) -> Iterator[None]:
    """Inside the block SIGNALS go to HANDLER (a function, or signal.SIG_IGN)."""
    saved = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, previous in saved.items():
            signal.signal(s, previous)
