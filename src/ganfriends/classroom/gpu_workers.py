"""``ganfriends worker --gpus all|0,1``: one worker process per GPU of a student's machine.

Each child is the ordinary worker command with ``--device cuda:N`` and the name ``NAME-gpuN``
(its own leaderboard line), started in a session of its own: a Ctrl+C at the terminal reaches the
parent only, which forwards every stop signal once to every child, so the two-stage stop holds
(the first signal finishes or gives back each unit, the second gives it back at once). Children
die with the parent even when it is SIGKILLed (``children.bind_to_parent``). Their output is
prefixed with their GPU.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import IO

from ganfriends.children import child_env
from ganfriends.errors import GanError
from ganfriends.signals import HANDLED_SIGNALS

# Options the children get from us instead of from the command line.
REPLACED = ("--gpus", "--device", "--name")


def parse_gpus(spec: str, available: int) -> list[int]:
    """``all`` or ``0,1``: the GPU indices, checked against the ``available`` count."""
    if available == 0:
        raise GanError(
            "--gpus needs CUDA GPUs and this machine has none: run one `ganfriends worker` "
            "(it uses every CPU core)"
        )
    if spec == "all":
        return list(range(available))
    try:
        gpus = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise GanError(f"--gpus takes all or indices such as 0,1, not {spec!r}") from None
    if not gpus or len(set(gpus)) != len(gpus) or any(g < 0 or g >= available for g in gpus):
        raise GanError(
            f"--gpus {spec}: this machine has {available} CUDA GPU(s), 0 to {available - 1}, "
            "each at most once"
        )
    return gpus


def child_commands(argv: Sequence[str], gpus: Sequence[int], name: str) -> list[list[str]]:
    """The worker command line of each GPU: ``argv`` (the worker's own options) without
    ``--gpus``, ``--device`` and ``--name``, plus this GPU's device and name."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        option = arg.split("=", 1)[0]
        if option in REPLACED:
            skip = "=" not in arg
            continue
        kept.append(arg)
    base = [sys.executable, "-m", "ganfriends", *kept]
    return [[*base, "--device", f"cuda:{g}", "--name", f"{name}-gpu{g}"] for g in gpus]


def _relay(stream: IO[str], prefix: str) -> None:
    for line in stream:
        print(f"{prefix} {line}", end="", flush=True)


def run_workers(commands: Sequence[Sequence[str]], labels: Sequence[str]) -> int:
    """Run the commands side by side until all exit; stop signals are forwarded once to each.

    Returns the highest exit status (130 when they were stopped, 0 when all finished).
    """
    children = [
        subprocess.Popen(
            list(command),
            env=child_env(),
            start_new_session=True,  # the terminal's Ctrl+C reaches us alone: no double signal
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command in commands
    ]
    relays = [
        threading.Thread(target=_relay, args=(child.stdout, f"[{label}]"), daemon=True)
        for child, label in zip(children, labels, strict=True)
    ]
    for relay in relays:
        relay.start()

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in HANDLED_SIGNALS}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for relay in relays:
        relay.join(timeout=5)
    return max(codes)
