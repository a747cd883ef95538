"""Which devices train in a federated round.

Devices are 0..N: device 0 is the server device, 1..N the clients. The functions here choose
CLIENTS only; a round's members are device 0 plus the chosen clients (``round_members``). That is
this project's design, not FeGAN's: there, rank 0 is in every communication group but its model
counts only when the sampler drew it from range(0, size) like any client (``choose_r0``,
dist-lsgan.py:159-160, 249-256, 473-476), and a group holds int(C * size) sampled devices
(dist-lsgan.py:209), rank 0 included when drawn.

References are to LPD-EPFL/FeGAN at e67382b.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from ganfriends import rng

# Third key element of the random-sampling stream (non-zero: derive_seed pads keys with zeros).
_RANDOM_TAG = 1
# Slack for C * N landing an ulp above an integer (0.07 * 100 == 7.000000000000001).
_CEIL_SLACK = 1e-9


def members_per_round(clients: int, fraction: float) -> int:
    """ceil(fraction * clients), clamped to [1, clients]: the clients chosen per round.

    Deviation: FeGAN samples int(C * size) devices out of all size = N + 1, server included
    (dist-lsgan.py:209); for the README setting (N = 41, C = 0.05) that is 2 where this gives 3,
    plus device 0. A product within 1e-9 above an integer counts as that integer.
    """
    _check_clients(clients)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    return min(clients, max(1, math.ceil(fraction * clients - _CEIL_SLACK)))


def random_members(clients: int, count: int, seed: int, round_index: int) -> list[int]:
    """``count`` distinct clients from 1..N, sorted; stream keyed (seed, SAMPLING, 1, round).

    FeGAN draws ``random.sample(range(0, size), gp_size)`` unseeded on rank 0 (dist-lsgan.py:225)
    and precomputes at most 101 groups that rounds then cycle through (dist-lsgan.py:272, 414);
    pass ``round_index % 101`` to reproduce that period. Deviation: seeded per round, clients only.
    """
    _check_clients(clients)
    if not 1 <= count <= clients:
        raise ValueError(f"count must lie in [1, {clients}], got {count}")
    if round_index < 0:
        raise ValueError(f"round_index must be >= 0, got {round_index}")
    key = rng.derive_seed(seed, rng.SAMPLING, _RANDOM_TAG, round_index)
    drawn = np.random.Generator(np.random.PCG64(key)).choice(clients, size=count, replace=False)
    return sorted(int(d) + 1 for d in drawn)


def round_members(clients: Iterable[int]) -> list[int]:
    """A round's members: device 0 (trained every round in this project) then the chosen clients.

    Raises ValueError if a client id is 0 or repeated.
    """
    chosen = sorted(int(c) for c in clients)
    if len(set(chosen)) != len(chosen) or (chosen and chosen[0] < 1):
        raise ValueError(f"chosen clients must be distinct ids >= 1, got {chosen}")
    return [0, *chosen]


class BalancedSampler:
    """FeGAN's balanced ("smart") sampling (dist-lsgan.py:211-248), over the clients 1..N.

    State, initialised once and carried over every round (FeGAN builds all groups in one loop):

    - one FIFO queue per class of the clients holding it (count > 0), initially in DESCENDING id
      order, N first (FeGAN enqueues ``reversed(wrk_cls)``, dist-lsgan.py:217-220); no seed, the
      whole procedure is deterministic given the histograms;
    - ``taken_count``: per class, the images of every client picked so far (dist-lsgan.py:222,
      242). FeGAN's float32 counts are int64 here (exact, same order of ties).

    Each of a round's ``group_size`` slots (dist-lsgan.py:229-248): take the class with the
    smallest taken_count (first index on ties, ``np.where(...)[0][0]``); pop clients from its
    queue, putting each popped one straight back at the end (line 245, whether picked or not),
    until one not yet in this round's group is found; it joins, and its histogram is added to
    taken_count. After ``num_devices`` (N + 1, FeGAN's ``size``) fruitless pops the slot stays
    empty, so a group can come out short (then every later slot of that round, which sees the
    same taken_count, is empty too). Groups are returned sorted (dist-lsgan.py:270).

    Deviations: device 0 never enters a queue (FeGAN queues rank 0 like any worker); a class held
    by no client is skipped when choosing the minimum (FeGAN would block forever on its empty
    queue, ``Queue.get`` at line 237); groups do not cycle with period 101 (pass
    ``round_index % 101`` for that).

    ``members(r)`` replays rounds 0..r from this state once and memoises them, so the answer
    never depends on which rounds were asked before: a restarted coordinator gets what an
    uninterrupted one got.
    """

    def __init__(self, histograms: npt.ArrayLike, group_size: int) -> None:
        counts = np.asarray(histograms)
        if counts.ndim != 2 or counts.shape[0] < 2 or counts.shape[1] < 1:
            raise ValueError("histograms must be (devices x classes) with device 0 and a client")
        if not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 0):
            raise ValueError("histograms must hold non-negative integer counts")
        clients = counts.shape[0] - 1
        if not 1 <= group_size <= clients:
            raise ValueError(f"group_size must lie in [1, {clients}], got {group_size}")
        self._histograms = counts.astype(np.int64)
        self._group_size = group_size
        self._max_tries = counts.shape[0]
        held = self._histograms > 0
        self._queues = [
            deque(d for d in range(clients, 0, -1) if held[d, c]) for c in range(counts.shape[1])
        ]
        # Classes no client holds can never be taken: keep them out of the minimum.
        self._selectable = np.array([len(q) > 0 for q in self._queues])
        if not self._selectable.any():
            raise ValueError("no client holds any image")
        self._taken = np.zeros(counts.shape[1], dtype=np.int64)
        self._rounds: list[list[int]] = []

    def members(self, round_index: int) -> list[int]:
        """The clients (sorted, possibly fewer than group_size) chosen for round ``round_index``."""
        if round_index < 0:
            raise ValueError(f"round_index must be >= 0, got {round_index}")
        while len(self._rounds) <= round_index:
            self._rounds.append(self._next_group())
        return list(self._rounds[round_index])

    def _next_group(self) -> list[int]:
        group: list[int] = []
        for _ in range(self._group_size):
            masked = np.where(self._selectable, self._taken, np.iinfo(np.int64).max)
            cls = int(np.argmin(masked))  # argmin returns the first index on ties
            queue = self._queues[cls]
            for _ in range(self._max_tries):
                client = queue.popleft()
                queue.append(client)
                if client not in group:
                    group.append(client)
                    self._taken += self._histograms[client]
                    break
        return sorted(group)


def weak_devices(clients: int, fraction: float) -> frozenset[int]:
    """FeGAN dcgan's weak workers: clients 1, 1 + s, 1 + 2s, ... <= N with s = round(1 / fraction).

    dist-dcgan.py:361-363: ``range(1, size, round(1/weak_percent))`` with size = N + 1, so the
    step is Python's ``round`` (half to even: fraction 0.4 gives step 2), not a ceiling. Weak
    workers run int(E / 2) local steps (dist-dcgan.py:418-420). Fraction 0 gives no weak device;
    FeGAN asserts fraction < 1 (dist-dcgan.py:549), 1 is accepted here and makes every client weak.
    """
    _check_clients(clients)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    if fraction == 0.0:
        return frozenset()
    return frozenset(range(1, clients + 1, round(1 / fraction)))


def _check_clients(clients: int) -> None:
    if clients < 1:
        raise ValueError(f"need at least one client, got {clients}")
