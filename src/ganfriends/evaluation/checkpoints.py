"""Evaluating saved checkpoints: ``evaluate_checkpoint`` and its report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from ganfriends.evaluation.common import Progress, no_progress
from ganfriends.evaluation.evaluator import NUM_SAMPLES, Evaluator
from ganfriends.evaluation.featurenet import TrainingRecipe
from ganfriends.training.checkpoint import Checkpoint, load_checkpoint


def checkpoint_dataset(checkpoint: Checkpoint) -> tuple[str, str | None]:
    """The dataset a checkpoint was trained on and its path (fashion-mnist when unrecorded)."""
    data = checkpoint.run_config.get("data")
    run_data: dict[str, Any] = data if isinstance(data, dict) else {}
    path = run_data.get("dataset_path")
    return str(run_data.get("dataset") or "fashion-mnist"), str(path) if path else None


@dataclass
class EvalReport:
    """The result of evaluating one checkpoint."""

    checkpoint: str
    step: int
    images_seen: int
    metrics: dict[str, float]
    reference: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the metrics at the top level, then where they come from."""
        return {
            **self.metrics,
            "checkpoint": self.checkpoint,
            "step": self.step,
            "images_seen": self.images_seen,
            **self.reference,
            "seconds": round(self.seconds, 2),
        }


def evaluate_checkpoint(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    dataset_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    num_samples: int = NUM_SAMPLES,
    seed: int = 0,
    device: torch.device | str = "auto",
    inception: str | os.PathLike[str] | None = None,
    recipe: TrainingRecipe | None = None,
    evaluator: Evaluator | None = None,
    progress: Progress = no_progress,
) -> EvalReport:
    """Evaluate a checkpoint's generator against its dataset (the checkpoint's own by default).

    Pass an ``evaluator`` to reuse prepared real features across checkpoints.
    """
    start = time.monotonic()
    checkpoint = load_checkpoint(path)
    if dataset is None:
        dataset, saved_path = checkpoint_dataset(checkpoint)
        dataset_path = dataset_path if dataset_path is not None else saved_path
    name = dataset
    model = checkpoint.model_config
    if evaluator is None:
        evaluator = Evaluator.for_dataset(
            name,
            dataset_path=dataset_path,
            data_dir=data_dir,
            image_size=model.image_size,
            num_samples=num_samples,
            seed=seed,
            device=device,
            inception=inception,
            recipe=recipe,
            progress=progress,
        )
    evaluator.check_image_shape((model.channels, model.image_size, model.image_size))
    generator = checkpoint.build_generator(evaluator.device)
    n = min(num_samples, evaluator.num_real)
    progress(f"generating and embedding {n} samples")
    metrics = evaluator.evaluate(generator, num_samples=n)
    return EvalReport(
        checkpoint=str(path),
        step=checkpoint.step,
        images_seen=checkpoint.images_seen,
        metrics=metrics,
        reference=evaluator.describe(),
        seconds=time.monotonic() - start,
    )
