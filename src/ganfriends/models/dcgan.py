"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015, arXiv:1511.06434).

Both networks are a stack of stride-2 (transposed) convolutions whose depth follows the image size:
each layer doubles (G) or halves (D) the spatial size, starting from / ending at 4x4. With the
defaults, ``Generator()`` is the seed project's 64x64 RGB model with a 100-d latent
(3,576,704 parameters) and ``Discriminator()`` its critic (2,765,568 parameters).

These two classes are also the types of *any* architecture's networks: every other architecture's
classes subclass them and override ``_layers``, so code typed with ``Generator`` /
``Discriminator`` holds any of them.

The discriminator returns *logits*; the loss (``ganfriends.losses``) applies the sigmoid, which is
numerically safer than a final ``nn.Sigmoid`` + ``BCELoss``.
"""

from __future__ import annotations

import torch
from torch import nn

from ganfriends.models.base import ModelConfig, Network


class Generator(Network):
    """DCGAN's G: maps z (N, latent_dim, 1, 1) to images (N, channels, size, size) in [-1, 1]."""

    arch = "dcgan"
    default_config = ModelConfig()
    factory = "make_generator"

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


class Discriminator(Network):
    """DCGAN's D: maps images (N, channels, size, size) to one real/fake logit each: (N,)."""

    arch = "dcgan"
    default_config = ModelConfig()
    factory = "make_discriminator"

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
