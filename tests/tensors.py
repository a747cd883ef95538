"""Small typed accessors for the tests: torch types a parameter's ``.grad`` and a BatchNorm's
running statistics as optional, and a test that reads them must fail when they are missing."""

from __future__ import annotations

import torch
from torch import nn


def grad_of(parameter: torch.Tensor) -> torch.Tensor:
    """``parameter.grad``; fails the test when no backward pass reached the parameter."""
    assert parameter.grad is not None, f"no gradient reached a parameter of {parameter.shape}"
    return parameter.grad


def running_stats(layer: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """A BatchNorm's (running_mean, running_var); fails when it does not track them."""
    assert layer.running_mean is not None and layer.running_var is not None, "no running stats"
    return layer.running_mean, layer.running_var
