"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015, arXiv:1511.06434).

Both networks are a stack of stride-2 (transposed) convolutions whose depth follows the image size:
each layer doubles (G) or halves (D) the spatial size, starting from / ending at 4x4. With the
defaults, ``Generator()`` is the seed project's 64x64 RGB model with a 100-d latent
(3,576,704 parameters) and ``Discriminator()`` its critic (2,765,568 parameters).

The discriminator returns *logits*; the loss (``ganfriends.losses``) applies the sigmoid, which is
numerically safer than a final ``nn.Sigmoid`` + ``BCELoss``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

SUPPORTED_IMAGE_SIZES = (16, 32, 64, 128)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines the two networks' architecture (stored in every checkpoint)."""

    image_size: int = 64  # output height == width; a power of two in SUPPORTED_IMAGE_SIZES
    channels: int = 3  # 1 (grey) or 3 (RGB)
    latent_dim: int = 100  # size of z, fed to G as (N, latent_dim, 1, 1)
    g_features: int = 64  # "ngf": G's width at its last hidden layer
    d_features: int = 64  # "ndf": D's width at its first layer

    def __post_init__(self) -> None:
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ValueError(
                f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {self.image_size}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for name in ("latent_dim", "g_features", "d_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def num_blocks(self) -> int:
        """Number of stride-2 stages between 4x4 and the image size (4 for 64x64, 3 for 32x32)."""
        return int(math.log2(self.image_size)) - 2

    def to_dict(self) -> dict[str, int]:
        """Plain-dict form, safe for ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; ignores keys it does not know (forward compatibility)."""
        known = {k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN init (paper section 4): conv weights ~ N(0, 0.02); BN gamma ~ N(1, 0.02), beta 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """Maps z (N, latent_dim, 1, 1) to images (N, channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, config: ModelConfig | None = None, **overrides: int) -> None:
        super().__init__()
        self.config = config or ModelConfig(**overrides)
        cfg = self.config
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
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate images; ``z`` may also be (N, latent_dim) and is reshaped."""
        if z.dim() == 2:
            z = z[:, :, None, None]
        out: torch.Tensor = self.main(z)
        return out


class Discriminator(nn.Module):
    """Maps images (N, channels, image_size, image_size) to one real/fake logit each: (N,)."""

    def __init__(self, config: ModelConfig | None = None, **overrides: int) -> None:
        super().__init__()
        self.config = config or ModelConfig(**overrides)
        cfg = self.config
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
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (N,)."""
        out: torch.Tensor = self.main(images)
        return out.view(-1)


def build_models(config: ModelConfig, seed: int | None = None) -> tuple[Generator, Discriminator]:
    """Build G and D; a seed makes their initial weights reproducible (global RNG untouched)."""
    if seed is None:
        return Generator(config), Discriminator(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(config), Discriminator(config)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
