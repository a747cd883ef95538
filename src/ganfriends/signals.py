"""One stop policy for every long-running command.

SIGINT (Ctrl+C), SIGTERM (``kill``, ``docker stop``, systemd, Colab tearing a runtime down) and
SIGHUP (the terminal was closed) all mean "stop warmly": the first asks the loop to stop at its
next safe point; a second signal, or the end of an optional grace period, aborts at once with
``KeyboardInterrupt`` (the worker then gives its unit back).

Handlers only set a flag (no I/O, no locks: a signal can land anywhere); the loop checks
``stop.requested`` between steps and waits on ``stop.event``, so every wait returns at once on a
signal. The grace deadline is enforced by a watcher thread, never by the handler. Handlers are
installed for the duration of a ``with`` block and the previous ones restored afterwards.

SIGKILL cannot be caught: what a process starts is tied to it by :mod:`ganfriends.children`.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM) + (
    (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()
)
WATCH_INTERVAL = 0.1  # seconds between the grace watcher's looks at the stop flag


class StopRequest:
    """Set by the first signal; ``event`` lets waiting threads wake up early."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signals = 0
        self.expired = False  # the grace period ran out: the next handler call aborts

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.event.is_set()

    def request(self) -> None:
        """Ask for a stop (also usable from code, e.g. tests)."""
        self.event.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if signum == getattr(signal, "SIGHUP", None):
            _detach_from_terminal()
        if self.signals > 1 or self.expired:
            raise KeyboardInterrupt
        self.event.set()


def _detach_from_terminal() -> None:
    """After a hang-up, writes to the closed terminal fail (EIO): send them to /dev/null, so the
    warm stop can still print its goodbye and finish its cleanup. Pipes and files are kept
    (``nohup`` and log files still get the output)."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                if os.isatty(fd):
                    os.dup2(null, fd)
        os.close(null)


def _watch(stop: StopRequest, grace: float, done: threading.Event, lock: threading.Lock) -> None:
    """Once a stop is requested, allow ``grace`` seconds, then abort the main thread."""
    while not stop.event.is_set():
        if done.wait(WATCH_INTERVAL):
            return
    if done.wait(grace):
        return
    with lock:  # never after the block has ended and restored the previous handlers
        if done.is_set():
            return
        stop.expired = True
        # Runs the SIGINT handler in the main thread, which sees ``expired`` and aborts.
        _thread.interrupt_main()


@contextmanager
def graceful_stop(grace: float | None = None) -> Iterator[StopRequest]:
    """Install the stop handlers (main thread only; elsewhere, a plain StopRequest).

    ``grace``: seconds the block may keep running after the first signal before it is aborted
    as if by a second one (None: no limit, the loop's own safe points suffice).
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS}
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, stop._handle)
    done, lock = threading.Event(), threading.Lock()
    if grace is not None:
        threading.Thread(
            target=_watch, args=(stop, grace, done, lock), daemon=True, name="stop-grace"
        ).start()
    try:
        yield stop
    finally:
        with lock:
            done.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
