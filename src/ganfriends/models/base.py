"""What every architecture shares: the configuration, the weight init and the networks' base.

:class:`ModelConfig` determines the two networks (it is stored in every checkpoint).
:class:`Network` is the shared body of every generator and discriminator: it checks the config's
architecture, builds ``self.main`` from the subclass's ``_layers`` and applies DCGAN's init.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from torch import nn

from ganfriends.errors import ConfigError

SUPPORTED_IMAGE_SIZES = (16, 32, 64, 128)
# The architectures a config may name; ganfriends.models.registry maps each to its classes.
ARCHITECTURES = ("dcgan", "lsgan")
LSGAN_IMAGE_SIZE = 32  # FeGAN's LSGAN is written for 32x32 only (see ganfriends.models.lsgan)
_STR_FIELDS = frozenset({"arch"})  # every other ModelConfig field is an int
# Upper bounds, generous for real models, so that a stored or downloaded configuration cannot ask
# for an absurd network (a few-KB Hub repository asked for 10 GB to 32 TB). StyleGAN's z has 512
# entries and BigGAN's 120; DCGAN's widths are 64 and the largest published ones 128-512.
MAX_LATENT_DIM = 4096
MAX_FEATURES = 1024


class InvalidModelConfig(ConfigError, ValueError):
    """The model configuration is invalid.

    A :class:`ConfigError`, so every command's error funnel prints it as one line (``coordinator
    --model lsgan`` on 64x64 data is a user's mistake, not a bug); still a ``ValueError``, which
    is what callers reading stored or downloaded configurations catch.
    """


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines the two networks' architecture (stored in every checkpoint).

    ``arch="lsgan"`` has fixed layer widths (FeGAN's), so it ignores ``g_features`` and
    ``d_features``, and it needs ``image_size == 32``.
    """

    image_size: int = 64  # output height == width; a power of two in SUPPORTED_IMAGE_SIZES
    channels: int = 3  # 1 (grey) or 3 (RGB)
    latent_dim: int = 100  # size of z, fed to G as (N, latent_dim, 1, 1)
    g_features: int = 64  # "ngf": G's width at its last hidden layer (dcgan only)
    d_features: int = 64  # "ndf": D's width at its first layer (dcgan only)
    # Last, so positional construction is unchanged; a stored config without it is a dcgan one.
    arch: str = "dcgan"  # one of ARCHITECTURES

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise InvalidModelConfig(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.arch == "lsgan" and self.image_size != LSGAN_IMAGE_SIZE:
            raise InvalidModelConfig(
                f"image_size must be {LSGAN_IMAGE_SIZE} for arch 'lsgan' "
                f"(FeGAN's LSGAN is 32x32 only), got {self.image_size}"
            )
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise InvalidModelConfig(
                f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {self.image_size}"
            )
        if self.channels not in (1, 3):
            raise InvalidModelConfig(f"channels must be 1 or 3, got {self.channels}")
        for name, most in (
            ("latent_dim", MAX_LATENT_DIM),
            ("g_features", MAX_FEATURES),
            ("d_features", MAX_FEATURES),
        ):
            if not 1 <= getattr(self, name) <= most:
                raise InvalidModelConfig(f"{name} must be in 1..{most}, got {getattr(self, name)}")

    @property
    def num_blocks(self) -> int:
        """Number of stride-2 stages between 4x4 and the image size (4 for 64x64, 3 for 32x32)."""
        return int(math.log2(self.image_size)) - 2

    def to_dict(self) -> dict[str, int | str]:
        """Plain-dict form (ints and the ``arch`` string), safe for ``weights_only=True`` loads."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; ignores keys it does not know (forward compatibility).

        A dict without ``arch`` (every checkpoint and run stored before it existed) is a dcgan one.
        """
        known: dict[str, Any] = {
            k: str(v) if k in _STR_FIELDS else int(v)
            for k, v in data.items()
            if k in cls.__dataclass_fields__
        }
        return cls(**known)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN init (paper section 4): conv weights ~ N(0, 0.02); BN gamma ~ N(1, 0.02), beta 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Network(nn.Module):
    """One of the two networks: ``self.main`` is the subclass's ``_layers`` for its config.

    A subclass sets ``arch`` and ``default_config`` and implements ``_layers`` and ``forward``;
    config checking and weight init are shared.
    """

    arch: ClassVar[str]
    default_config: ClassVar[ModelConfig]
    factory: ClassVar[str]  # the function to point a caller to when the arch does not match

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = config or replace(self.default_config, **overrides)
        if self.config.arch != self.arch:
            # Never build a dcgan net for an lsgan checkpoint (its weights would not load).
            raise ValueError(
                f"{type(self).__name__} builds {self.arch} networks but the config is for "
                f"{self.config.arch!r}: use {self.factory}(config)"
            )
        self.main = nn.Sequential(*self._layers(self.config))
        self.apply(init_dcgan_weights)

    def _layers(self, cfg: ModelConfig) -> list[nn.Module]:
        """The network as one sequence of modules."""
        raise NotImplementedError


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
