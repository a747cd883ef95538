"""Inception features: locating the weights, errors, and (when installed) a tiny real run."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

from ganfriends.data import make_dataset
from ganfriends.evaluation import EvalError, Evaluator, InceptionFeatures, locate_inception
from ganfriends.evaluation.inception import INSTALL_HINT, load_inception, nv_bilinear
from tests.conftest import requires_fashion_mnist


def installed_weights() -> Path | None:
    try:
        return locate_inception("auto")
    except EvalError:
        return None


WEIGHTS = installed_weights()
requires_inception = pytest.mark.skipif(
    WEIGHTS is None,
    reason=f"FID Inception weights not installed (`{INSTALL_HINT}` into the venv to run this)",
)


def test_auto_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EvalError, match=re.escape(INSTALL_HINT)) as info:
        locate_inception("auto")
    assert "\n" not in str(info.value)


def test_missing_or_broken_weights_file(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="not found"):
        locate_inception(tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a torchscript archive")
    with pytest.raises(EvalError, match=r"cannot load .* as TorchScript"):
        load_inception(locate_inception(broken))


def test_nv_bilinear_resizes_and_keeps_constants() -> None:
    x = torch.full((2, 1, 32, 32), 0.25)
    y = nv_bilinear(x, 299)
    assert y.shape == (2, 1, 299, 299)
    assert torch.allclose(y, torch.full_like(y, 0.25))


@requires_inception
@requires_fashion_mnist
def test_tiny_inception_evaluation(tmp_path: Path) -> None:
    assert WEIGHTS is not None
    evaluator = Evaluator.for_dataset(
        "fashion-mnist", num_samples=16, device="cpu", inception="auto", cache_dir=tmp_path
    )
    assert isinstance(evaluator.extractor, InceptionFeatures)
    assert evaluator.extractor.describe()["sha1_verified"] is True
    assert evaluator.reference.features.shape == (16, 2048)
    assert bool((evaluator.reference.features >= 0).all())  # pool3 of ReLU maps
    train, _ = make_dataset("fashion-mnist").get_batch(list(range(16)))
    noise = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real = evaluator.evaluate_images(train)
    fake = evaluator.evaluate_images(noise)
    assert fake["fid"] > 2 * real["fid"]
