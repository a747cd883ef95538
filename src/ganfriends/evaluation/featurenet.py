"""The feature classifier's network and its deterministic training on the CPU.

A small CNN (conv-BN-ReLU-maxpool blocks) is trained on a labelled dataset's training split; its
penultimate layer (128 ReLU units) gives the features, as is usual for MNIST-like GANs. Training is
deterministic for its recipe: fixed CPU thread count, initial weights and data order from
ganfriends' rng keys, no dropout or augmentation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganfriends import rng
from ganfriends.data import ImageDataset
from ganfriends.evaluation.common import FEATURE_NET, EvalError, Progress, no_progress

_EVAL_BATCH = 1000  # test images per forward pass when measuring accuracy


@dataclass(frozen=True)
class FeatureNetSpec:
    """The classifier's architecture."""

    channels: int = 1
    image_size: int = 32  # what the net sees: any other input size is resized to it
    widths: tuple[int, ...] = (16, 32, 64)  # conv blocks, each halving the resolution
    feature_dim: int = 128  # the penultimate layer: the features
    num_classes: int = 10


@dataclass(frozen=True)
class TrainingRecipe:
    """How the classifier is trained (Adam with a one-cycle learning-rate schedule)."""

    epochs: int = 3
    batch_size: int = 128
    max_lr: float = 2e-3
    seed: int = 0
    train_images: int | None = None  # None: the whole training split
    # Fixed because CPU kernels may sum in a thread-count-dependent order.
    threads: int = 2
    # Below this test accuracy the features are not trusted (not part of the cache key).
    min_accuracy: float = 0.88


# The recipe of `ganfriends eval` and Evaluator: ~0.91 test accuracy on Fashion-MNIST.
FULL_RECIPE = TrainingRecipe()


class FeatureNet(nn.Module):
    """Conv-BN-ReLU-MaxPool blocks, a ReLU feature layer and a linear class head."""

    def __init__(self, spec: FeatureNetSpec) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        width = spec.channels
        for out in spec.widths:
            layers += [
                nn.Conv2d(width, out, 3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            width = out
        side = spec.image_size // 2 ** len(spec.widths)
        layers += [nn.Flatten(), nn.Linear(width * side * side, spec.feature_dim), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(spec.feature_dim, spec.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N, feature_dim) of images (N, C, H, W) in [-1, 1]."""
        size = self.spec.image_size
        if images.shape[-2:] != (size, size):
            images = F.interpolate(
                images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        out: torch.Tensor = self.body(images)
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        out: torch.Tensor = self.head(self.features(images))
        return out


def architecture_description(spec: FeatureNetSpec) -> str:
    """A canonical description of the net: the spec and every layer (torch's module repr)."""
    return f"{spec}\n{FeatureNet(spec)!r}"


@contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def labels_of(dataset: ImageDataset) -> torch.Tensor:
    """The dataset's class labels (int64); EvalError when it has none."""
    labels = dataset.labels()
    if labels is None:
        raise EvalError(
            f"{dataset.name} has no class labels: ganfriends' feature classifier cannot be "
            "trained on it; use Inception features (--inception PATH or --inception auto)"
        )
    return torch.as_tensor(labels, dtype=torch.long)


def classifier_accuracy(net: FeatureNet, dataset: ImageDataset) -> float:
    """The fraction of ``dataset`` (with labels) that ``net`` classifies right."""
    labels = labels_of(dataset)
    net.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dataset), _EVAL_BATCH):
            indices = list(range(start, min(start + _EVAL_BATCH, len(dataset))))
            images, _ = dataset.get_batch(indices)
            correct += int((net(images).argmax(dim=1) == labels[indices]).sum())
    return correct / len(dataset)


def train_feature_net(
    train: ImageDataset,
    spec: FeatureNetSpec,
    recipe: TrainingRecipe,
    progress: Progress = no_progress,
) -> FeatureNet:
    """Train a :class:`FeatureNet` on the CPU; the same inputs always give the same weights."""
    labels = labels_of(train)
    with _threads(recipe.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng.derive_seed(recipe.seed, FEATURE_NET, 0))
        net = FeatureNet(spec)
        pool = rng.permutation(len(train), recipe.seed, FEATURE_NET, 0)
        if recipe.train_images is not None:
            pool = pool[: recipe.train_images]
        # Whole batches only: BatchNorm cannot normalise a last batch of a single image.
        steps_per_epoch = len(pool) // recipe.batch_size
        if steps_per_epoch == 0:
            raise EvalError(f"{len(pool)} training images are fewer than one batch")
        optimizer = torch.optim.Adam(net.parameters(), lr=recipe.max_lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.max_lr, total_steps=recipe.epochs * steps_per_epoch
        )
        start = time.monotonic()
        for epoch in range(recipe.epochs):
            net.train()
            order = pool[rng.permutation(len(pool), recipe.seed, FEATURE_NET, 1 + epoch)]
            total = 0.0
            for step in range(steps_per_epoch):
                batch = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
                images, _ = train.get_batch(batch.tolist())
                loss = F.cross_entropy(net(images), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                torch.autograd.backward(loss)
                optimizer.step()
                schedule.step()
                total += float(loss.detach())
            progress(
                f"feature classifier: epoch {epoch + 1}/{recipe.epochs}, "
                f"loss {total / steps_per_epoch:.3f} ({time.monotonic() - start:.0f} s)"
            )
    return net.eval()
