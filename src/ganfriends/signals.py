"""One stop policy for every long-running command.

SIGINT (Ctrl+C), SIGTERM (``kill``, ``docker stop``, systemd, Colab tearing a runtime down) and
SIGHUP (the terminal was closed) all mean "stop warmly": the first asks the loop to stop at its
next safe point; a second signal, or the end of an optional grace period, aborts at once with
``KeyboardInterrupt`` (the worker then gives its unit back).

Handlers only count (a plain attribute: no I/O, no locks) and raise on the second signal: a
Python-level handler runs in the main thread between two bytecodes, which may be inside
``Event.wait()`` holding the event's non-reentrant lock, so a handler that called ``Event.set()``
could wait for itself forever. The event is set by a relay thread instead: Python's own C-level
handler writes each signal's number to a socket (:func:`signal.set_wakeup_fd`), the relay reads
it, detaches from a hung-up terminal (SIGHUP) and then sets ``stop.event``. The loop checks
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
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM) + (
    (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()
)
WATCH_INTERVAL = 0.1  # seconds between the grace watcher's looks at the stop flag
RELAY_JOIN = 5.0  # seconds the end of a block waits for the relay to act on the last signals


class StopRequest:
    """Set by the first signal; ``event`` lets waiting threads wake up early."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signals = 0  # stop signals handled so far (written by the handler only)
        self.expired = False  # the grace period ran out: the next handler call aborts

    @property
    def requested(self) -> bool:
        """True once a stop was asked for.

        Reads the event, which the relay sets only after a hang-up's detach: whoever sees a stop
        may print its goodbye safely.
        """
        return self.event.is_set()

    def request(self) -> None:
        """Ask for a stop (also usable from code, e.g. tests)."""
        self.event.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Flag-only: no lock, no I/O. The first signal is acted on by the relay thread (which
        # sets the event); raising is all a handler can do without waiting on anything.
        self.signals += 1
        if self.signals > 1 or self.expired:
            raise KeyboardInterrupt


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


def _relay(stop: StopRequest, receiver: socket.socket, previous_fd: int) -> None:
    """Act on the signal numbers Python's C-level handler writes to ``receiver``, until the
    block's end closes the other side.

    SIGHUP first detaches from the terminal, then the event is set: a thread that sees the stop
    may print at once. Numbers of signals not handled here are passed on to the wakeup fd that
    was set before the block (asyncio's, for one), which would otherwise miss them.
    """
    handled = {int(sig) for sig in HANDLED_SIGNALS}
    while True:
        try:
            data = receiver.recv(256)
        except OSError:
            return
        if not data:
            return
        others = bytes(signum for signum in data if signum not in handled)
        if others and previous_fd != -1:
            with contextlib.suppress(OSError):
                os.write(previous_fd, others)
        if any(signum == getattr(signal, "SIGHUP", None) for signum in data):
            _detach_from_terminal()
        if any(signum in handled for signum in data):
            stop.event.set()


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
    # A socket pair, not a pipe: set_wakeup_fd takes a socket on every platform. The C-level
    # handler writes without blocking; a full buffer only drops numbers the relay has yet to read
    # anyway, so no warning (it would go to the terminal a SIGHUP just closed).
    receiver, sender = socket.socketpair()
    sender.setblocking(False)
    previous_fd = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
    relay = threading.Thread(
        target=_relay, args=(stop, receiver, previous_fd), daemon=True, name="stop-relay"
    )
    relay.start()
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
        signal.set_wakeup_fd(previous_fd)
        # The relay reads what is left, then sees the end: a signal that landed just before
        # the end of the block has set the event once we return (``stop.requested`` after it).
        sender.close()
        relay.join(RELAY_JOIN)
        receiver.close()
