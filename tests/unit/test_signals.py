"""The stop policy in-process: which signals stop warmly, what a second one and the grace do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ganfriends import signals
from ganfriends.signals import graceful_stop
from tests.waiting import wait_until


def wait_for_stop(stop: signals.StopRequest) -> None:
    wait_until(lambda: stop.requested, "the signal's stop request", timeout=5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_asks_for_a_warm_stop(sig: signal.Signals) -> None:
    with graceful_stop() as stop:
        os.kill(os.getpid(), sig)
        wait_for_stop(stop)
        assert stop.requested


def test_a_hang_up_detaches_from_the_terminal_before_the_stop_is_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen_at_detach: list[bool] = []
    with graceful_stop() as stop:
        # Whoever sees the stop may print its goodbye: by then the closed terminal must be gone.
        monkeypatch.setattr(
            signals, "_detach_from_terminal", lambda: seen_at_detach.append(stop.requested)
        )
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for_stop(stop)
    assert seen_at_detach == [False]


def test_a_second_signal_aborts_at_once() -> None:
    with pytest.raises(KeyboardInterrupt), graceful_stop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for_stop(stop)
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
        wait_for_stop(stop)
    time.sleep(0.8)  # past the grace: the watcher must have gone quietly
    assert not stop.expired


def wakeup_fd() -> int:
    """The process's current wakeup fd (only readable by setting it)."""
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def test_the_previous_handlers_come_back() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    fd_before = wakeup_fd()
    with graceful_stop(grace=1.0):
        pass
    assert {s: signal.getsignal(s) for s in before} == before
    assert wakeup_fd() == fd_before


def test_a_signal_at_the_end_of_the_block_is_seen_after_it() -> None:
    with graceful_stop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler has run; the relay may not have set the event yet
    assert stop.requested  # the block's end waited for the relay


# A process whose main thread spins on the stop event (the handler can land while it holds the
# event's lock) while another thread sends it signals, one per round: a handler that took that
# lock waited for itself, and with no second signal to break the wait, forever. Then pairs: the
# second signal of each aborts the wait, however it lands. Runs apart, where a hang is killed.
SIGNALS_WHILE_WAITING = textwrap.dedent(
    """
    import os, random, signal, sys, threading, time
    from ganfriends.signals import graceful_stop

    ROUNDS, BURSTS = int(sys.argv[1]), int(sys.argv[2])
    SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    go = threading.Semaphore(0)
    bursts = []  # how many signals the next round gets: 1 (a warm stop) or a burst

    def sender():
        pid, rng = os.getpid(), random.Random(0)
        while True:
            go.acquire()
            count, first = bursts.pop(0), rng.randrange(3)
            time.sleep(rng.random() * 0.002)  # land anywhere in the main thread's wait
            for i in range(count):  # different signals: the kernel merges a pending repeat
                os.kill(pid, SIGNALS[(first + i) % 3])

    threading.Thread(target=sender, daemon=True).start()
    for round in range(ROUNDS):
        bursts.append(1)
        with graceful_stop() as stop:
            go.release()
            while not stop.requested:
                stop.event.wait(0)  # no sleep: mostly inside wait(), holding its lock
        assert stop.signals == 1, stop.signals
    aborted = 0
    for round in range(BURSTS):
        bursts.append(2)
        try:
            with graceful_stop() as stop:
                go.release()
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    stop.event.wait(0.0005)
        except KeyboardInterrupt:
            aborted += 1
        except RuntimeError as exc:
            # Python's own hazard, not ours: an abort that lands in Condition.wait's cleanup
            # leaves its lock released, and the with-block's release then fails. Still an abort.
            assert isinstance(exc.__context__, KeyboardInterrupt), exc
            aborted += 1
    print(f"warm {ROUNDS} aborted {aborted}", flush=True)
    """
)


def test_signals_while_the_main_thread_waits_never_deadlock() -> None:
    rounds, bursts = 40, 20  # the old handler hung in the first round
    try:
        done = subprocess.run(
            [sys.executable, "-c", SIGNALS_WHILE_WAITING, str(rounds), str(bursts)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        raise AssertionError(f"deadlocked: {exc.stdout!r} {exc.stderr!r}") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"warm {rounds} aborted {bursts}"
