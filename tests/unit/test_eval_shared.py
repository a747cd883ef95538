"""Helpers shared by the evaluation tests (no tests here).

The feature classifier is trained ONCE per test session with a deliberately quick recipe (1 epoch
on 8,192 images, ~0.83 test accuracy, a few seconds) into a session-wide data dir; the full recipe
(accuracy >= 0.88) is tested once, in test_eval_full_recipe.py (slow). Modules wrap these helpers
in their own fixtures; the results are memoised here, so the work happens once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ganfriends.evaluation import Evaluator, TrainingRecipe, features_cache_dir

QUICK_RECIPE = TrainingRecipe(epochs=1, train_images=8192, threads=1, min_accuracy=0.75)
QUICK_SAMPLES = 2000  # held-out images of the shared quick evaluator
_SHARED: dict[str, object] = {}


def shared_data_dir(factory: pytest.TempPathFactory) -> Path:
    """One data dir for the whole session: its features/ holds the quick classifier."""
    if "data_dir" not in _SHARED:
        _SHARED["data_dir"] = factory.mktemp("eval_data_dir")
    path = _SHARED["data_dir"]
    assert isinstance(path, Path)
    return path


def shared_quick_evaluator(factory: pytest.TempPathFactory) -> Evaluator:
    """Fashion-MNIST test split (2,000 images) on the quick classifier's features."""
    if "evaluator" not in _SHARED:
        _SHARED["evaluator"] = Evaluator.for_dataset(
            "fashion-mnist",
            num_samples=QUICK_SAMPLES,
            device="cpu",
            recipe=QUICK_RECIPE,
            cache_dir=features_cache_dir(shared_data_dir(factory)),
        )
    evaluator = _SHARED["evaluator"]
    assert isinstance(evaluator, Evaluator)
    return evaluator
