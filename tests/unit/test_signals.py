"""The stop policy in-process: which signals stop warmly, what a second one and the grace do."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from ganfriends.signals import graceful_stop


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_asks_for_a_warm_stop(sig: signal.Signals) -> None:
    with graceful_stop() as stop:
        os.kill(os.getpid(), sig)
        wait_until(lambda: stop.requested)
        assert stop.requested


def test_a_second_signal_aborts_at_once() -> None:
    with pytest.raises(KeyboardInterrupt), graceful_stop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: stop.requested)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)  # the handler raises long before this ends


def test_the_grace_period_aborts_a_block_that_keeps_running() -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), graceful_stop(grace=0.3) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        while True:  # work that ignores the stop
            time.sleep(0.01)
    assert stop.expired
    assert time.monotonic() - started < 3


def test_a_block_that_ends_within_the_grace_is_not_aborted() -> None:
    with graceful_stop(grace=0.5) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: stop.requested)
    time.sleep(0.8)  # past the grace: the watcher must have gone quietly
    assert not stop.expired


def test_the_previous_handlers_come_back() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with graceful_stop(grace=1.0):
        pass
    assert {s: signal.getsignal(s) for s in before} == before
