"""Deterministic randomness derived from (seed, purpose, ...) keys.

Every random draw that shapes a run — the epoch's data order, each step's noise, the fixed noise of
the sample grids — comes from its own generator seeded by a key such as (seed, NOISE, step). A run
resumed at step s therefore draws exactly what an uninterrupted run would, and (in the distributed
modes) a work unit's noise does not depend on which worker computes it. Noise is drawn on the CPU
and then moved, so it is the same on every device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# Purposes: the second element of every key, so that two purposes never share a stream.
DATA_ORDER = 1
NOISE = 2
FIXED_NOISE = 3
INIT = 4
# Federated training: which images each device holds, and which devices train in a round.
PARTITION = 5
SAMPLING = 6
FED_DATA_ORDER = 7  # a federated device's batches in one round: (seed, 7, round, device, pass)
FED_NOISE = 8  # its noise: (seed, 8, round, device, step)
DROPOUT = 9  # dropout: (seed, 9, round, device) federated, (seed, 9, unit) sync, (seed, 9, step)
MD_DATA_ORDER = 10  # an MD-GAN device's real batches: (seed, 10, device, pass)
MD_NOISE = 11  # the k generated batches of an MD-GAN iteration: (seed, 11, iteration, batch)
MD_SWAP = 12  # the discriminator swap after an MD-GAN iteration: (seed, 12, iteration)
TRANSFER = 13  # stochastic rounding of a unit's upload (ganfriends.compression): (seed, 13, unit)
# Stochastic rounding of the weights workers download: (seed, 14, the network's content key).
DOWNLOAD = 14


def derive_seed(*key: int) -> int:
    """Mix a tuple of non-negative ints into one 63-bit seed (NumPy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@contextmanager
def seeded_global_rng(device: torch.device, *key: int) -> Iterator[None]:
    """Run a block with torch's global generators seeded from ``key``, restored afterwards.

    For layers that draw from the global generator (FeGAN's LSGAN discriminator has dropout):
    inside, their draws are a function of the key, so a unit's result does not depend on the
    worker that computes it, nor a resumed run on what ran before it.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(*key))
        yield


def generator_for(*key: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``key``."""
    gen = torch.Generator()
    gen.manual_seed(derive_seed(*key))
    return gen


def permutation(n: int, *key: int) -> torch.Tensor:
    """A random permutation of ``range(n)`` (int64) determined by ``key``."""
    return torch.randperm(n, generator=generator_for(*key))


def latent_noise(n: int, latent_dim: int, *key: int) -> torch.Tensor:
    """Standard normal z of shape (n, latent_dim, 1, 1), determined by ``key``."""
    return torch.randn(n, latent_dim, 1, 1, generator=generator_for(*key))
