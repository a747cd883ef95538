"""A real :class:`Evaluator` whose features need no training: a fixed random projection of the
pixels. The metrics are computed as for any features; only what they measure is cruder."""

from __future__ import annotations

import torch

from ganfriends.data import DatasetFingerprint
from ganfriends.evaluation import Evaluator
from ganfriends.evaluation.extractor import FeatureExtractor
from ganfriends.evaluation.reference import RealFeatures


class ProjectedPixels(FeatureExtractor):
    """Pixels times a fixed random matrix (seeded): 16 features per image."""

    kind, dim, key = "projection", 16, "projected-pixels-16"

    def __init__(self, pixels: int) -> None:
        super().__init__()
        weight = torch.randn(pixels, self.dim, generator=torch.Generator().manual_seed(0))
        self.weight = weight / pixels**0.5

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.mm(pixels.flatten(1), self.weight)

    def _move(self, device: torch.device) -> None:
        self.weight = self.weight.to(device)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "dim": self.dim}


def pixel_evaluator(real: torch.Tensor) -> Evaluator:
    """Scores generators against ``real`` images (N, C, H, W) in [-1, 1], N samples each."""
    extractor = ProjectedPixels(real[0].numel())
    shape = (int(real.shape[1]), int(real.shape[2]), int(real.shape[3]))
    fingerprint = DatasetFingerprint("pixels", int(real.shape[0]), shape[1], shape[0], "0" * 64)
    reference = RealFeatures(extractor.features(real), fingerprint, "test", shape, 0)
    return Evaluator(extractor, reference, kid_subsets=2, kid_subset_size=16)
