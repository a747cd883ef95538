"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015, arXiv:1511.06434).

Both networks are a stack of stride-2 (transposed) convolutions whose depth follows the image size:
each layer doubles (G) or halves (D) the spatial size, starting from / ending at 4x4. With the
defaults, ``Generator()`` is the seed project's 64x64 RGB model with a 100-d latent
(3,576,704 parameters) and ``Discriminator()`` its critic (2,765,568 parameters).

``ModelConfig.arch`` chooses the architecture: ``dcgan`` (this module) or ``lsgan``, FeGAN's 32x32
model (``ganfriends.models_lsgan``). Build networks through :func:`build_models`,
:func:`make_generator` and :func:`make_discriminator`, which dispatch on it; every architecture's
classes subclass :class:`Generator` / :class:`Discriminator` (they override ``_layers``), so code
typed with those names holds any of them.

The discriminator returns *logits*; the loss (``ganfriends.losses``) applies the sigmoid, which is
numerically safer than a final ``nn.Sigmoid`` + ``BCELoss``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from ganfriends.errors import ConfigError

SUPPORTED_IMAGE_SIZES = (16, 32, 64, 128)
ARCHITECTURES = ("dcgan", "lsgan")
LSGAN_IMAGE_SIZE = 32  # FeGAN's LSGAN is written for 32x32 only (see models_lsgan)
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


class Generator(nn.Module):
    """DCGAN's G: maps z (N, latent_dim, 1, 1) to images (N, channels, size, size) in [-1, 1].

    Also the base of the other architectures' generators: a subclass sets ``arch`` and
    ``default_config`` and overrides ``_layers``; config checking, weight init and ``forward``
    are shared.
    """

    arch = "dcgan"
    default_config = ModelConfig()

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = config or replace(self.default_config, **overrides)
        if self.config.arch != self.arch:
            # Never build a dcgan net for an lsgan checkpoint (its weights would not load).
            raise ValueError(
                f"{type(self).__name__} builds {self.arch} networks but the config is for "
                f"{self.config.arch!r}: use make_generator(config)"
            )
        self.main = nn.Sequential(*self._layers(self.config))
        self.apply(init_dcgan_weights)

    def _layers(self, cfg: ModelConfig) -> list[nn.Module]:
        """The network as one sequence, from z (N, latent, 1, 1) to the image."""
        width = cfg.g_features * 2 ** (cfg.num_blocks - 1)
        # (N, latent, 1, 1) -> (N, width, 4, 4): a "projection" done as a 4x4 transposed conv.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.latent_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        # Each stage doubles H and W and halves the width: 4x4 -> 8x8 -> ... -> image_size / 2.
        for _ in range(cfg.num_blocks - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        # Last stage to full resolution; no BatchNorm on G's output layer (paper section 3).
        layers += [nn.ConvTranspose2d(width, cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        return layers

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate images; ``z`` may also be (N, latent_dim) and is reshaped."""
        if z.dim() == 2:
            z = z[:, :, None, None]
        out: torch.Tensor = self.main(z)
        return out


class Discriminator(nn.Module):
    """DCGAN's D: maps images (N, channels, size, size) to one real/fake logit each: (N,).

    Also the base of the other architectures' discriminators, as for :class:`Generator`.
    """

    arch = "dcgan"
    default_config = ModelConfig()

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = config or replace(self.default_config, **overrides)
        if self.config.arch != self.arch:
            raise ValueError(
                f"{type(self).__name__} builds {self.arch} networks but the config is for "
                f"{self.config.arch!r}: use make_discriminator(config)"
            )
        self.main = nn.Sequential(*self._layers(self.config))
        self.apply(init_dcgan_weights)

    def _layers(self, cfg: ModelConfig) -> list[nn.Module]:
        """The network as one sequence, from the image to (N, 1, 1, 1) or (N, 1) scores."""
        width = cfg.d_features
        # No BatchNorm on D's input layer (paper section 3); LeakyReLU(0.2) throughout.
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        # Each stage halves H and W and doubles the width, down to (N, width, 4, 4).
        for _ in range(cfg.num_blocks - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        # (N, width, 4, 4) -> (N, 1, 1, 1): the logit.
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        return layers

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return raw scores (logits for bce) of shape (N,)."""
        out: torch.Tensor = self.main(images)
        return out.view(-1)


def _classes(arch: str) -> tuple[type[Generator], type[Discriminator]]:
    """The (G, D) classes of an architecture."""
    if arch == "lsgan":
        # Imported here: models_lsgan subclasses this module's classes, so it imports us.
        from ganfriends.models_lsgan import LsganDiscriminator, LsganGenerator

        return LsganGenerator, LsganDiscriminator
    if arch == "dcgan":
        return Generator, Discriminator
    raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")


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


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
