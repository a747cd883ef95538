"""The tests' one way to wait: poll a condition until it holds, bounded, failing with a message.

A test never sleeps for a guessed time: it waits for what it needs (a line printed, a row
written, a session in a state) and fails, saying what it waited for, when that does not come.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    what: str | Callable[[], str],
    *,
    timeout: float = 30.0,
    interval: float = 0.02,
) -> T:
    """Call ``condition`` until it returns a true value, and return that value.

    After ``timeout`` seconds the test fails with ``what`` (a description of the awaited state,
    or a function giving one, called only then: the output of a process, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what if isinstance(what, str) else what()
            raise AssertionError(f"waited {timeout:g} s for {described}")
        time.sleep(interval)
