from __future__ import annotations

import math

import pytest
import torch

from ganfriends.losses import LeastSquares, NonSaturatingBCE, make_loss


def test_bce_discriminator_loss_at_chance_is_two_log_two() -> None:
    zeros = torch.zeros(4)
    assert NonSaturatingBCE().discriminator(zeros, zeros).item() == pytest.approx(2 * math.log(2))


def test_bce_generator_loss_is_non_saturating() -> None:
    # When D confidently rejects fakes (logit -10), G's gradient must stay large, not vanish.
    logits = torch.full((4,), -10.0, requires_grad=True)
    torch.autograd.backward(NonSaturatingBCE().generator(logits))
    assert logits.grad is not None
    assert logits.grad.abs().mean().item() == pytest.approx(0.25, rel=1e-3)  # (sigmoid - 1) / n


def test_bce_score_is_a_probability() -> None:
    assert NonSaturatingBCE().score(torch.tensor([0.0])).item() == pytest.approx(0.5)


def test_lsgan_losses_vanish_at_their_targets() -> None:
    loss = LeastSquares()
    assert loss.discriminator(torch.ones(3), torch.zeros(3)).item() == 0
    assert loss.generator(torch.ones(3)).item() == 0


def test_make_loss_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="bce, lsgan"):
        make_loss("wasserstein")
