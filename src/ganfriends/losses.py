"""GAN objectives. A loss turns discriminator outputs into D's and G's losses, each a batch mean.

``bce`` is the non-saturating loss of Goodfellow et al. (2014) as DCGAN uses it: D minimises
BCE(D(x), 1) + BCE(D(G(z)), 0); G minimises BCE(D(G(z)), 1) instead of -BCE(D(G(z)), 0), which
saturates early in training. ``lsgan`` is Mao et al. (2017)'s least squares loss with the
0-1 coding (a=0, b=1, c=1), the one FeGAN's dist-lsgan uses.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class GanLoss(Protocol):
    """What the training step needs from an objective."""

    name: str

    def discriminator(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """D's loss for D's outputs on a real batch and a (detached) fake batch."""
        ...

    def generator(self, fake_out: torch.Tensor) -> torch.Tensor:
        """G's loss for D's outputs on a fake batch."""
        ...

    def score(self, out: torch.Tensor) -> torch.Tensor:
        """D's output mapped to a readable 'how real' score: D(x) and D(G(z)) in the logs."""
        ...


class NonSaturatingBCE:
    """Standard DCGAN loss on logits (BCE-with-logits: stable for large |logit|)."""

    name = "bce"

    def discriminator(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """BCE(D(x), 1) + BCE(D(G(z)), 0), as the reference DCGAN sums errD_real + errD_fake."""
        real = F.binary_cross_entropy_with_logits(real_out, torch.ones_like(real_out))
        fake = F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out))
        return real + fake

    def generator(self, fake_out: torch.Tensor) -> torch.Tensor:
        """BCE(D(G(z)), 1): G's non-saturating objective."""
        return F.binary_cross_entropy_with_logits(fake_out, torch.ones_like(fake_out))

    def score(self, out: torch.Tensor) -> torch.Tensor:
        """Probability that the input is real."""
        return torch.sigmoid(out)


class LeastSquares:
    """LSGAN: D regresses real to 1 and fake to 0; G pushes fakes towards 1."""

    name = "lsgan"

    def discriminator(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """0.5 E[(D(x) - 1)^2] + 0.5 E[D(G(z))^2]."""
        return 0.5 * ((real_out - 1) ** 2).mean() + 0.5 * (fake_out**2).mean()

    def generator(self, fake_out: torch.Tensor) -> torch.Tensor:
        """0.5 E[(D(G(z)) - 1)^2]."""
        return 0.5 * ((fake_out - 1) ** 2).mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        """D's raw output is already on the 0 (fake) .. 1 (real) scale."""
        return out


LOSSES: dict[str, type[NonSaturatingBCE] | type[LeastSquares]] = {
    NonSaturatingBCE.name: NonSaturatingBCE,
    LeastSquares.name: LeastSquares,
}


def make_loss(name: str) -> GanLoss:
    """Look up an objective by name (``bce`` or ``lsgan``)."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}") from None
