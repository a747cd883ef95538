"""The feature classifier: cache key, cache reuse, determinism, accuracy check."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from ganfriends.data import DatasetFingerprint, ImageDataset
from ganfriends.evaluation import (
    ClassifierFeatures,
    EvalError,
    FeatureNetSpec,
    TrainingRecipe,
    cache_key,
    load_or_train_feature_net,
)
from ganfriends.evaluation import classifier as classifier_module
from ganfriends.evaluation.featurenet import FeatureNet, train_feature_net
from tests.conftest import requires_fashion_mnist
from tests.unit.test_eval_shared import QUICK_RECIPE, shared_data_dir

TINY = TrainingRecipe(epochs=1, batch_size=64, train_images=512, threads=1, min_accuracy=0.0)
FP = DatasetFingerprint("fashion-mnist", 60000, 32, 1, "a" * 64)
FP_TEST = DatasetFingerprint("fashion-mnist", 10000, 32, 1, "b" * 64)


class Stripes(ImageDataset):
    """512 labelled 32x32 grey images: class c is a horizontal bar at row 3c, plus noise."""

    name = "fashion-mnist"  # pretends to be it, so load_or_train_feature_net accepts it
    channels = 1
    image_size = 32
    in_memory = True

    def __init__(self, digest: str, n: int = 512) -> None:
        gen = torch.Generator().manual_seed(len(digest) + n)
        self.classes: np.ndarray | None = np.arange(n, dtype=np.int64) % 10
        images = torch.rand(n, 1, 32, 32, generator=gen) * 0.4 - 1
        for i, label in enumerate(self.classes):
            images[i, 0, 3 * label : 3 * label + 3] = 1.0
        self.images = images
        self.digest = digest

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[self.check_index(index)]

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        return self.images[torch.as_tensor(list(indices), dtype=torch.long)], 0

    def fingerprint(self) -> DatasetFingerprint:
        return DatasetFingerprint(self.name, len(self), 32, 1, self.digest)

    def labels(self) -> np.ndarray | None:
        return self.classes


@pytest.fixture
def stripes(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """make_dataset (as the classifier module sees it) returns Stripes; set ['digest'] to vary."""
    state = {"digest": "1" * 64}

    def fake_make_dataset(name: str, *, split: str = "train", **_: object) -> ImageDataset:
        return Stripes(state["digest"] + split, n=512 if split == "train" else 200)

    monkeypatch.setattr(classifier_module, "make_dataset", fake_make_dataset)
    return state


def test_cache_key_hashes_data_architecture_and_recipe() -> None:
    spec = FeatureNetSpec()
    key = cache_key(FP, FP_TEST, spec, TINY)
    assert key == cache_key(FP, FP_TEST, spec, TINY)
    assert key == cache_key(FP, FP_TEST, spec, dataclasses.replace(TINY, min_accuracy=0.5))
    other_data = dataclasses.replace(FP, digest="c" * 64)
    assert key != cache_key(other_data, FP_TEST, spec, TINY)
    assert key != cache_key(FP, dataclasses.replace(FP_TEST, size=9999), spec, TINY)
    assert key != cache_key(FP, FP_TEST, dataclasses.replace(spec, widths=(16, 32, 48)), TINY)
    assert key != cache_key(FP, FP_TEST, dataclasses.replace(spec, feature_dim=64), TINY)
    assert key != cache_key(FP, FP_TEST, spec, dataclasses.replace(TINY, epochs=2))


def test_weights_are_cached_reused_and_rebuilt_when_the_data_changes(
    stripes: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY)
    assert first.trained and first.path.is_file() and first.test_accuracy > 0.5
    # safetensors: an 8-byte header length, then a JSON header (never a pickle).
    raw = first.path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert json.loads(header["__metadata__"]["json"])["key"] == first.key

    def no_training(*args: object, **kwargs: object) -> FeatureNet:
        raise AssertionError("the cached weights should have been reused")

    monkeypatch.setattr(classifier_module, "train_feature_net", no_training)
    again = load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY)
    assert not again.trained and again.key == first.key
    assert again.test_accuracy == first.test_accuracy
    for name, tensor in first.net.state_dict().items():
        assert torch.equal(tensor, again.net.state_dict()[name])

    monkeypatch.setattr(classifier_module, "train_feature_net", train_feature_net)
    stripes["digest"] = "2" * 64  # another dataset version: new key, new file
    changed = load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY)
    assert changed.trained and changed.key != first.key and changed.path != first.path
    assert len(list(tmp_path.glob("feature-net-*.safetensors"))) == 2


def test_training_is_deterministic_and_retrain_overwrites(
    stripes: dict[str, str], tmp_path: Path
) -> None:
    first = load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY)
    retrained = load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY, retrain=True)
    assert retrained.trained and retrained.path == first.path
    for name, tensor in first.net.state_dict().items():
        assert torch.equal(tensor, retrained.net.state_dict()[name]), name


def test_damaged_cache_is_retrained(stripes: dict[str, str], tmp_path: Path) -> None:
    first = load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY)
    first.path.write_bytes(b"\x80\x04 not safetensors")
    messages: list[str] = []
    again = load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY, progress=messages.append)
    assert again.trained
    assert any("unusable" in m for m in messages)
    assert load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY).trained is False


def test_accuracy_below_the_threshold_is_an_error(stripes: dict[str, str], tmp_path: Path) -> None:
    strict = dataclasses.replace(TINY, min_accuracy=1.01)
    with pytest.raises(EvalError, match=r"test accuracy .*needs >= 1.01") as info:
        load_or_train_feature_net(cache_dir=tmp_path, recipe=strict)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("*.safetensors"))  # untrustworthy weights are not cached


def test_features_are_the_penultimate_layer(stripes: dict[str, str], tmp_path: Path) -> None:
    extractor = ClassifierFeatures(load_or_train_feature_net(cache_dir=tmp_path, recipe=TINY))
    images = Stripes("x" * 64, n=20).images
    feats = extractor.features(images)
    assert feats.shape == (20, 128) and feats.dtype == torch.float32
    assert bool((feats >= 0).all())  # after the ReLU
    # 64x64 inputs are resized to the 32x32 the net was trained on.
    big = torch.nn.functional.interpolate(images, size=(64, 64), mode="nearest")
    assert extractor.features(big).shape == (20, 128)
    with pytest.raises(EvalError, match="1-channel"):
        extractor.features(torch.zeros(2, 3, 32, 32))


def test_datasets_without_labels_are_refused() -> None:
    unlabelled = Stripes("d" * 64)
    unlabelled.classes = None
    with pytest.raises(EvalError, match="no class labels"):
        train_feature_net(unlabelled, FeatureNetSpec(), TINY)


@requires_fashion_mnist
def test_quick_classifier_on_fashion_mnist(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = shared_data_dir(tmp_path_factory)
    trained = load_or_train_feature_net("fashion-mnist", data_dir=data_dir, recipe=QUICK_RECIPE)
    assert trained.test_accuracy >= QUICK_RECIPE.min_accuracy
    assert trained.path.parent == data_dir / "features"
