"""Architecture name -> its generator and discriminator classes, and the factories over them.

Build networks through :func:`build_models`, :func:`make_generator` and
:func:`make_discriminator`, which dispatch on ``ModelConfig.arch``. A new architecture is one
module whose classes subclass :class:`~ganfriends.models.dcgan.Generator` /
:class:`~ganfriends.models.dcgan.Discriminator`, one entry here and its name in
``ganfriends.models.base.ARCHITECTURES`` (which configs are checked against).
"""

from __future__ import annotations

import torch

from ganfriends.models.base import ARCHITECTURES, ModelConfig
from ganfriends.models.dcgan import Discriminator, Generator
from ganfriends.models.lsgan import LsganDiscriminator, LsganGenerator

NETWORKS: dict[str, tuple[type[Generator], type[Discriminator]]] = {
    "dcgan": (Generator, Discriminator),
    "lsgan": (LsganGenerator, LsganDiscriminator),
}
# A name a config accepts but nothing builds would fail at the first run, far from here.
assert set(NETWORKS) == set(ARCHITECTURES), "registry and ARCHITECTURES disagree"


def _classes(arch: str) -> tuple[type[Generator], type[Discriminator]]:
    """The (G, D) classes of an architecture."""
    try:
        return NETWORKS[arch]
    except KeyError:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}") from None


def make_generator(config: ModelConfig) -> Generator:
    """An (unseeded) generator of ``config.arch``, e.g. to load a checkpoint's weights into."""
    return _classes(config.arch)[0](config)


def make_discriminator(config: ModelConfig) -> Discriminator:
    """An (unseeded) discriminator of ``config.arch``, e.g. to load weights into."""
    return _classes(config.arch)[1](config)


def build_models(config: ModelConfig, seed: int | None = None) -> tuple[Generator, Discriminator]:
    """Build G and D of ``config.arch``; a seed makes their initial weights reproducible.

    The global RNG is left untouched when a seed is given.
    """
    if seed is None:
        return make_generator(config), make_discriminator(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_generator(config), make_discriminator(config)
