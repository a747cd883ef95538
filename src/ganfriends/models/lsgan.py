"""FeGAN's LSGAN generator and discriminator (32x32), the model of its ``dist-lsgan.py``.

Architecture as in LPD-EPFL/FeGAN (commit e67382b) ``dist-lsgan.py`` lines 77-130 (``lsgan.py``
has the same classes from line 50), itself the PyTorch-GAN LSGAN: G is a linear projection of z to
128 x 8 x 8 and two nearest-neighbour upsample + 3x3 conv stages; D is four stride-2 3x3 convs
(16, 32, 64, 128 channels) and a linear layer to one score. Widths are fixed, so ``g_features``
and ``d_features`` of :class:`ModelConfig` are ignored. In FeGAN's MNIST / Fashion-MNIST setting
(1 channel, latent 100, 32x32) G has 1,049,729 parameters and D 98,113.

Deliberately kept from FeGAN:

- ``nn.BatchNorm2d(n, 0.8)``: the second positional argument is ``eps``, so BN runs with eps 0.8
  (probably meant as a momentum, but that is what FeGAN trained with).
- ``Dropout2d(0.25)`` after every D block: D's outputs are random in train mode.
- Weight init ``weights_init_normal`` (``dist-lsgan.py`` 68-74): conv weights ~ N(0, 0.02), BN
  gamma ~ N(1, 0.02), beta 0; conv biases and the linear layers keep PyTorch's default init.
  That is exactly what :func:`ganfriends.models.base.init_dcgan_weights` does to these modules,
  so the base classes' init is used.

Not kept: FeGAN's D returns (N, 1); here it returns (N,) like the DCGAN D, the shape
``ganfriends.losses`` and the training step expect. The score is raw (no sigmoid), which is what
FeGAN's ``MSELoss`` against 1 / 0 targets uses and what the ``lsgan`` loss expects; with the
``bce`` loss it is read as a logit.
"""

from __future__ import annotations

from torch import nn

from ganfriends.models.base import LSGAN_IMAGE_SIZE, ModelConfig
from ganfriends.models.dcgan import Discriminator, Generator

# FeGAN's defaults (dist-lsgan.py 548-550): latent 100, 32x32, 1 channel (MNIST / Fashion-MNIST).
FEGAN_MNIST = ModelConfig(image_size=LSGAN_IMAGE_SIZE, channels=1, latent_dim=100, arch="lsgan")

G_WIDTH = 128  # G's channels after the projection (dist-lsgan.py 82)
D_WIDTHS = (16, 32, 64, 128)  # D's block widths (dist-lsgan.py 115-118)
BN_EPS = 0.8  # nn.BatchNorm2d(n, 0.8): eps, as FeGAN wrote it (dist-lsgan.py 87, 91, 111)


class LsganGenerator(Generator):
    """FeGAN's LSGAN G: z (N, latent, 1, 1) or (N, latent) to (N, channels, 32, 32) in [-1, 1]."""

    arch = "lsgan"
    default_config = FEGAN_MNIST

    def _layers(self, cfg: ModelConfig) -> list[nn.Module]:
        """Projection, then two upsample + conv stages (dist-lsgan.py 81-99)."""
        init_size = cfg.image_size // 4  # 8: two x2 upsamplings reach the image size
        return [
            # (N, latent, 1, 1) -> (N, latent): FeGAN's G takes flat z; ours may be 4-d.
            nn.Flatten(),
            # (N, latent) -> (N, 128 * 8 * 8) -> (N, 128, 8, 8)  (lines 82, 98-99)
            nn.Linear(cfg.latent_dim, G_WIDTH * init_size**2),
            nn.Unflatten(1, (G_WIDTH, init_size, init_size)),
            # (N, 128, 8, 8) -> (N, 128, 16, 16)  (lines 85-88)
            nn.Upsample(scale_factor=2),
            nn.Conv2d(G_WIDTH, G_WIDTH, 3, stride=1, padding=1),
            nn.BatchNorm2d(G_WIDTH, BN_EPS),
            nn.LeakyReLU(0.2, inplace=True),
            # (N, 128, 16, 16) -> (N, 64, 32, 32)  (lines 89-92)
            nn.Upsample(scale_factor=2),
            nn.Conv2d(G_WIDTH, G_WIDTH // 2, 3, stride=1, padding=1),
            nn.BatchNorm2d(G_WIDTH // 2, BN_EPS),
            nn.LeakyReLU(0.2, inplace=True),
            # (N, 64, 32, 32) -> (N, channels, 32, 32) in [-1, 1]  (lines 93-94)
            nn.Conv2d(G_WIDTH // 2, cfg.channels, 3, stride=1, padding=1),
            nn.Tanh(),
        ]


class LsganDiscriminator(Discriminator):
    """FeGAN's LSGAN D: (N, channels, 32, 32) to one raw score per image, shape (N,)."""

    arch = "lsgan"
    default_config = FEGAN_MNIST

    def _layers(self, cfg: ModelConfig) -> list[nn.Module]:
        """Four stride-2 conv blocks, then a linear score (dist-lsgan.py 108-128)."""
        layers: list[nn.Module] = []
        in_channels = cfg.channels
        # (N, C, 32, 32) -> (N, 16, 16, 16) -> (N, 32, 8, 8) -> (N, 64, 4, 4) -> (N, 128, 2, 2).
        # Block = conv, LeakyReLU, Dropout2d, then BN except on the first block (lines 108-118).
        for index, width in enumerate(D_WIDTHS):
            layers += [
                nn.Conv2d(in_channels, width, 3, 2, 1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Dropout2d(0.25),
            ]
            if index > 0:
                layers.append(nn.BatchNorm2d(width, BN_EPS))
            in_channels = width
        ds_size = cfg.image_size // 2 ** len(D_WIDTHS)  # 2 (line 122)
        # (N, 128, 2, 2) -> (N, 512) -> (N, 1); the base forward flattens it to (N,) (line 123).
        layers += [nn.Flatten(), nn.Linear(in_channels * ds_size**2, 1)]
        return layers
