"""The full feature-classifier recipe reaches the accuracy FID needs (slow: trains for real)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganfriends.evaluation import FULL_RECIPE, features_cache_dir, load_or_train_feature_net
from tests.conftest import requires_fashion_mnist


@pytest.mark.slow
@requires_fashion_mnist
def test_full_recipe_reaches_the_accuracy_threshold(full_features_data_dir: Path) -> None:
    cache = features_cache_dir(full_features_data_dir)
    threads = torch.get_num_threads()
    trained = load_or_train_feature_net("fashion-mnist", cache_dir=cache, recipe=FULL_RECIPE)
    assert trained.test_accuracy >= FULL_RECIPE.min_accuracy == 0.88
    assert torch.get_num_threads() == threads  # the fixed training thread count is restored
    assert not load_or_train_feature_net(
        "fashion-mnist", cache_dir=cache, recipe=FULL_RECIPE
    ).trained
