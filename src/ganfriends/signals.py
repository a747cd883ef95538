"""Graceful stop on Ctrl+C / SIGTERM: the first signal asks the loop to stop at the next safe point,
the second aborts at once (``KeyboardInterrupt``).

Handlers only set a flag (no I/O, no locks: a signal can land anywhere); the loop checks
``stop.requested`` between steps and does its saving in ordinary code. Handlers are installed for
the duration of a ``with`` block and the previous ones restored afterwards.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first signal; ``event`` lets waiting threads wake up early."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signals = 0

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.event.is_set()

    def request(self) -> None:
        """Ask for a stop (also usable from code, e.g. tests)."""
        self.event.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            raise KeyboardInterrupt
        self.event.set()


@contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Install the two-stage handlers (main thread only; elsewhere, a plain StopRequest)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS}
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, stop._handle)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
