"""A real :class:`Evaluator` whose features need no training: a fixed random projection of the
pixels. The metrics are computed as for any features; only what they measure is cruder."""

from __future__ import annotations

import torch
from torch import nn

from ganfriends.data import DatasetFingerprint
from ganfriends.evaluation import Evaluator
from ganfriends.evaluation.extractor import FeatureExtractor
from ganfriends.evaluation.reference import RealFeatures


class ProjectedPixels(FeatureExtractor):
    """Pixels times a fixed random matrix (seeded): 16 features per image."""

    kind, dim, key = "projection", 16, "projected-pixels-16"

    def __init__(self, pixels: int) -> None:
        net = nn.Linear(pixels, self.dim, bias=False)
        weight = torch.randn(self.dim, pixels, generator=torch.Generator().manual_seed(0))
        net.weight.data = weight / pixels**0.5
        net.requires_grad_(False)
        super().__init__(net)

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels.flatten(1))  # type: ignore[no-any-return]  # nn.Module is untyped


def pixel_evaluator(real: torch.Tensor) -> Evaluator:
    """Scores generators against ``real`` images (N, C, H, W) in [-1, 1], N samples each."""
    extractor = ProjectedPixels(real[0].numel())
    shape = (int(real.shape[1]), int(real.shape[2]), int(real.shape[3]))
    fingerprint = DatasetFingerprint("pixels", int(real.shape[0]), shape[1], shape[0], "0" * 64)
    reference = RealFeatures(extractor.features(real), fingerprint, "test", shape, 0)
    return Evaluator(extractor, reference, kid_subsets=2, kid_subset_size=16)
