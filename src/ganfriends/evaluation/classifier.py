"""The feature classifier ganfriends trains itself, cached, and its features.

The weights are cached as safetensors (never pickle) under a key hashing the datasets'
fingerprints, the architecture and the training recipe, so any change to one of them trains a new
net; the test accuracy is stored with them and checked against the recipe's threshold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganfriends import __version__
from ganfriends.blobs import TensorSpec
from ganfriends.data import DatasetFingerprint, make_dataset
from ganfriends.evaluation.common import (
    EvalError,
    Progress,
    features_cache_dir,
    load_tensors,
    no_progress,
    save_tensors,
)
from ganfriends.evaluation.extractor import FeatureExtractor
from ganfriends.evaluation.featurenet import (
    FULL_RECIPE,
    FeatureNet,
    FeatureNetSpec,
    TrainingRecipe,
    architecture_description,
    classifier_accuracy,
    labels_of,
    train_feature_net,
)

# Bumped whenever the training code changes what a recipe produces: old cache entries then miss.
CACHE_FORMAT = "ganfriends-feature-net-v1"

# The recipe used when none is given (tests swap in a quick one).
DEFAULT_RECIPE = FULL_RECIPE


def cache_key(
    train: DatasetFingerprint,
    test: DatasetFingerprint,
    spec: FeatureNetSpec,
    recipe: TrainingRecipe,
) -> str:
    """sha256 over the data (both splits' fingerprints), the architecture and the recipe."""
    trained_by = dataclasses.asdict(dataclasses.replace(recipe, min_accuracy=0.0))
    payload = {
        "format": CACHE_FORMAT,
        "architecture": architecture_description(spec),
        "recipe": trained_by,
        "train": train.to_dict(),
        "test": test.to_dict(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class TrainedFeatureNet:
    """A feature classifier ready for use, and where it came from."""

    net: FeatureNet
    key: str
    path: Path
    test_accuracy: float
    train_seconds: float
    trained: bool  # False when it was loaded from the cache


def _from_cache(path: Path, net: FeatureNet, key: str) -> tuple[float, float] | None:
    """Load cached weights into ``net``: (test accuracy, training seconds), or None on a miss."""
    cached = load_tensors(path, TensorSpec.of(net.state_dict()))
    if cached is None or cached[1].get("key") != key:
        return None
    try:
        accuracy = float(cached[1]["test_accuracy"])
        seconds = float(cached[1].get("train_seconds", 0.0))
        net.load_state_dict(cached[0])
    except (KeyError, TypeError, ValueError, RuntimeError):
        return None
    return accuracy, seconds


def _check_accuracy(accuracy: float, recipe: TrainingRecipe, name: str) -> None:
    if accuracy < recipe.min_accuracy:
        raise EvalError(
            f"the feature classifier reached only {accuracy:.4f} test accuracy on {name} "
            f"(needs >= {recipe.min_accuracy}): its features are not trustworthy for FID"
        )


def load_or_train_feature_net(
    dataset: str = "fashion-mnist",
    *,
    dataset_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    recipe: TrainingRecipe | None = None,
    retrain: bool = False,
    download: bool = True,
    progress: Progress = no_progress,
) -> TrainedFeatureNet:
    """The cached classifier for ``dataset`` (its train split), trained first when needed.

    ``retrain`` trains even when the cache holds one. EvalError when the dataset has no labels or
    the test accuracy is below the recipe's ``min_accuracy``.
    """
    recipe = recipe or DEFAULT_RECIPE
    spec0 = FeatureNetSpec()
    train = make_dataset(
        dataset,
        path=dataset_path,
        image_size=spec0.image_size,
        data_dir=data_dir,
        download=download,
    )
    test = make_dataset(
        dataset,
        path=dataset_path,
        image_size=spec0.image_size,
        split="test",
        data_dir=data_dir,
        download=download,
    )
    labels = labels_of(train)
    spec = dataclasses.replace(spec0, channels=train.channels, num_classes=int(labels.max()) + 1)
    key = cache_key(train.fingerprint(), test.fingerprint(), spec, recipe)
    directory = Path(cache_dir) if cache_dir is not None else features_cache_dir(data_dir)
    path = directory / f"feature-net-{dataset}-{key[:16]}.safetensors"
    net = FeatureNet(spec)
    found = None if retrain else _from_cache(path, net, key)
    if found is not None:
        accuracy, seconds = found
        _check_accuracy(accuracy, recipe, dataset)
        return TrainedFeatureNet(net.eval(), key, path, accuracy, seconds, trained=False)
    if path.exists() and not retrain:
        progress(f"cached feature classifier {path} is unusable: training it again")
    progress(f"training the feature classifier on {train.fingerprint().short()} (CPU, once)")
    start = time.monotonic()
    net = train_feature_net(train, spec, recipe, progress)
    seconds = time.monotonic() - start
    accuracy = classifier_accuracy(net, test)
    progress(f"feature classifier: test accuracy {accuracy:.4f} after {seconds:.0f} s")
    _check_accuracy(accuracy, recipe, dataset)
    metadata = {
        "key": key,
        "architecture": architecture_description(spec),
        "recipe": dataclasses.asdict(recipe),
        "train": train.fingerprint().to_dict(),
        "test": test.fingerprint().to_dict(),
        "test_accuracy": accuracy,
        "train_seconds": round(seconds, 2),
        "ganfriends": __version__,
    }
    save_tensors(path, net.state_dict(), metadata)
    return TrainedFeatureNet(net, key, path, accuracy, seconds, trained=True)


class ClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features of a trained :class:`FeatureNet`."""

    kind = "classifier"

    net: FeatureNet

    def __init__(self, trained: TrainedFeatureNet) -> None:
        super().__init__(trained.net)
        self.trained = trained
        self.dim = trained.net.spec.feature_dim
        self.key = f"classifier-{trained.key}"
        self.channels = (trained.net.spec.channels,)
        self.batch_size = 1000

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.features(pixels / 127.5 - 1)  # the [-1, 1] range it was trained on

    def describe(self) -> dict[str, object]:
        """Kind, dimension, test accuracy and the cache file."""
        return {
            **super().describe(),
            "test_accuracy": round(self.trained.test_accuracy, 4),
            "weights": str(self.trained.path),
            "key": self.trained.key[:16],
        }
