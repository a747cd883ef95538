"""What a worker computes a unit with: its workspace (its networks, data and device) and what the
unit starts from besides the published weights (a device's state, a version's published inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganfriends.data import ImageDataset

Inputs = dict[str, torch.Tensor]  # what a version publishes besides weights (MD-GAN's batches)


@dataclass(frozen=True)
class Workspace:
    """Where a worker computes units: its own G and D (holding the published weights of the
    unit's version when the unit starts; computing moves them), its copy of the data, its
    torch device."""

    generator: nn.Module
    discriminator: nn.Module
    dataset: ImageDataset
    device: torch.device


@dataclass(frozen=True)
class UnitStart:
    """What a unit starts from besides the published weights: its device's local state
    (per-device modes; None: a fresh device) and its version's published inputs
    (:class:`~ganfriends.rules.capabilities.PublishesInputs`)."""

    device_state: dict[str, torch.Tensor] | None = None
    inputs: Inputs | None = None


FRESH = UnitStart()
