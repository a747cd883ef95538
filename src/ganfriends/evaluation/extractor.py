"""The feature-extractor interface the metrics are computed on (own classifier or Inception)."""

from __future__ import annotations

import abc

import torch
from torch import nn

from ganfriends.evaluation.common import EvalError


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as float pixel values 0..255 rounded to integers.

    Real images come from 8-bit files, so generated ones are compared as they would be once
    saved as images (as StyleGAN's metric code does); otherwise sub-quantum differences that no
    saved sample could show would count in the metrics.
    """
    return images.to(torch.float32).add(1).mul_(127.5).round_().clamp_(0, 255)


class FeatureExtractor(abc.ABC):
    """Maps images (N, C, H, W) in [-1, 1] to feature vectors (N, dim) with the network ``net``."""

    kind: str  # "classifier" or "inception"
    dim: int
    # Identifies the weights and the preprocessing: features cached under it are reusable.
    key: str
    batch_size: int = 500
    # The input channel counts it accepts.
    channels: tuple[int, ...] = (1, 3)

    def __init__(self, net: nn.Module) -> None:
        self.net = net.eval()
        self.device = torch.device("cpu")

    @abc.abstractmethod
    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Features of one batch of pixel values in [0, 255] (float32, on ``self.device``)."""

    def describe(self) -> dict[str, object]:
        """What the features are, for reports (JSON-ready); subclasses add where they come from."""
        return {"kind": self.kind, "dim": self.dim}

    def to(self, device: torch.device | str) -> FeatureExtractor:
        """Compute on ``device`` from now on; returns self."""
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def check_channels(self, channels: int, what: str) -> None:
        """EvalError unless images with ``channels`` channels can be fed to this extractor."""
        if channels not in self.channels:
            raise EvalError(
                f"{self.kind} features take {' or '.join(map(str, self.channels))}-channel "
                f"images, but {what} has {channels} channels"
            )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features (N, dim) as float32 on the CPU, computed in batches without gradients."""
        if images.ndim != 4:
            raise EvalError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
        self.check_channels(int(images.shape[1]), "the batch")
        out = torch.empty((images.shape[0], self.dim), dtype=torch.float32)
        with torch.no_grad():
            for start in range(0, images.shape[0], self.batch_size):
                chunk = images[start : start + self.batch_size].to(self.device)
                feats = self._forward(quantize(chunk))
                out[start : start + chunk.shape[0]] = feats.to("cpu", torch.float32)
        return out
