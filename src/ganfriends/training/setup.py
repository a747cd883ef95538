"""What every command that trains sets up the same way from its config: the dataset, the model
it fixes, and the evaluator that scores a run while it trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from rich.console import Console

from ganfriends.config import Config, DataConfig
from ganfriends.data import ImageDataset, make_dataset
from ganfriends.errors import ConfigError
from ganfriends.models import ModelConfig

if TYPE_CHECKING:
    from ganfriends.evaluation import Evaluator

NUM_SAMPLES = 64  # images in each sample grid (8 x 8)


def open_dataset(data: DataConfig, name: str, image_size: int | None) -> ImageDataset:
    """Dataset ``name`` at ``image_size`` (None: its own), from where ``data`` says it is: a
    new run's from its config, a class run's (resumed, or joined by a worker) from the run's."""
    return make_dataset(
        name,
        path=data.dataset_path,
        image_size=image_size,
        data_dir=data.data_dir,
        download=data.download,
    )


def model_config_for(config: Config, dataset: ImageDataset) -> ModelConfig:
    """A run's architecture: the dataset fixes image size and channels, the config the rest."""
    try:
        return ModelConfig(
            image_size=dataset.image_size,
            channels=dataset.channels,
            latent_dim=config.training.latent_dim,
            g_features=config.training.g_features,
            d_features=config.training.d_features,
            arch=config.training.model,
        )
    except ValueError as exc:  # e.g. --model lsgan on 64x64 images: say which option to change
        raise ConfigError(f"--model {config.training.model}: {exc} (see --image-size)") from exc


def scoring_evaluator(
    config: Config,
    *,
    dataset: str,
    image_size: int,
    seed: int,
    device: torch.device | str,
    console: Console,
) -> Evaluator:
    """The evaluator that scores a run while it trains (``--eval-interval``), against
    ``config.training.eval_samples`` held-out images of ``dataset`` (prepared once)."""
    from ganfriends.evaluation import Evaluator

    return Evaluator.for_dataset(
        dataset,
        dataset_path=config.data.dataset_path,
        data_dir=config.data.data_dir,
        image_size=image_size,
        num_samples=config.training.eval_samples,
        seed=seed,
        device=str(device),
        progress=console.print,
    )
