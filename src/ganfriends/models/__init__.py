"""The generator and discriminator networks: one module per architecture, and their registry.

- :mod:`~ganfriends.models.base`: :class:`ModelConfig` (what determines both networks, stored in
  every checkpoint), the shared network body and DCGAN's weight init;
- :mod:`~ganfriends.models.dcgan`: DCGAN's :class:`Generator` / :class:`Discriminator`, which every
  architecture's classes subclass (so code typed with them holds any architecture);
- :mod:`~ganfriends.models.lsgan`: FeGAN's 32x32 LSGAN;
- :mod:`~ganfriends.models.registry`: ``arch`` -> classes, and the factories
  :func:`build_models`, :func:`make_generator`, :func:`make_discriminator`.
"""

from __future__ import annotations

from ganfriends.models.base import (
    ARCHITECTURES,
    LSGAN_IMAGE_SIZE,
    MAX_FEATURES,
    MAX_LATENT_DIM,
    SUPPORTED_IMAGE_SIZES,
    InvalidModelConfig,
    ModelConfig,
    Network,
    count_parameters,
    init_dcgan_weights,
)
from ganfriends.models.dcgan import Discriminator, Generator
from ganfriends.models.lsgan import FEGAN_MNIST, LsganDiscriminator, LsganGenerator
from ganfriends.models.registry import build_models, make_discriminator, make_generator

__all__ = [
    "ARCHITECTURES",
    "FEGAN_MNIST",
    "LSGAN_IMAGE_SIZE",
    "MAX_FEATURES",
    "MAX_LATENT_DIM",
    "SUPPORTED_IMAGE_SIZES",
    "Discriminator",
    "Generator",
    "InvalidModelConfig",
    "LsganDiscriminator",
    "LsganGenerator",
    "ModelConfig",
    "Network",
    "build_models",
    "count_parameters",
    "init_dcgan_weights",
    "make_discriminator",
    "make_generator",
]
