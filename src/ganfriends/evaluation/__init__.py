"""Sample-quality evaluation: FID, KID and k-NN precision/recall of a generator.

Features come from a small classifier ganfriends trains itself on the dataset's training split
(Fashion-MNIST; no download, ~1-2 min on a CPU once, then cached), or from the standard TF
Inception-v3 when the user has its TorchScript weights (``--inception``). ``Evaluator`` prepares
the held-out features once and evaluates generators during training; ``ganfriends eval`` evaluates
a checkpoint (:func:`run_eval`, :func:`add_eval_arguments`).
"""

from __future__ import annotations

from ganfriends.evaluation.checkpoints import EvalReport, evaluate_checkpoint
from ganfriends.evaluation.classifier import (
    DEFAULT_RECIPE,
    ClassifierFeatures,
    TrainedFeatureNet,
    cache_key,
    load_or_train_feature_net,
)
from ganfriends.evaluation.command import add_eval_arguments, run_eval
from ganfriends.evaluation.common import EvalError, features_cache_dir
from ganfriends.evaluation.evaluator import NUM_SAMPLES, Evaluator
from ganfriends.evaluation.extractor import FeatureExtractor
from ganfriends.evaluation.featurenet import FULL_RECIPE, FeatureNet, FeatureNetSpec, TrainingRecipe
from ganfriends.evaluation.inception import InceptionFeatures, locate_inception
from ganfriends.evaluation.metrics import (
    compute_metrics,
    frechet_distance,
    frechet_distance_from_stats,
    kernel_inception_distance,
    precision_recall,
)

__all__ = [
    "DEFAULT_RECIPE",
    "FULL_RECIPE",
    "NUM_SAMPLES",
    "ClassifierFeatures",
    "EvalError",
    "EvalReport",
    "Evaluator",
    "FeatureExtractor",
    "FeatureNet",
    "FeatureNetSpec",
    "InceptionFeatures",
    "TrainedFeatureNet",
    "TrainingRecipe",
    "add_eval_arguments",
    "cache_key",
    "compute_metrics",
    "evaluate_checkpoint",
    "features_cache_dir",
    "frechet_distance",
    "frechet_distance_from_stats",
    "kernel_inception_distance",
    "load_or_train_feature_net",
    "locate_inception",
    "precision_recall",
    "run_eval",
]
