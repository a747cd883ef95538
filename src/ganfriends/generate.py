"""``ganfriends generate``: draw a grid of images from a trained generator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ganfriends import rng
from ganfriends.device import resolve_device
from ganfriends.grid import save_grid
from ganfriends.models import ModelConfig
from ganfriends.training.checkpoint import load_checkpoint

if TYPE_CHECKING:
    from ganfriends.hub import HubTarget


def generate_images(
    checkpoint_path: str | os.PathLike[str], num: int, *, seed: int = 0, device: str = "auto"
) -> torch.Tensor:
    """``num`` images (num, C, H, W) in [-1, 1] from the checkpoint's generator in eval mode."""
    if num < 1:
        raise ValueError("num must be >= 1")
    checkpoint = load_checkpoint(checkpoint_path)
    target = resolve_device(device)
    return draw(checkpoint.build_generator(target), checkpoint.model_config, num, seed, target)


def draw(
    generator: torch.nn.Module, model_config: ModelConfig, num: int, seed: int, device: torch.device
) -> torch.Tensor:
    """``num`` images from a generator in eval mode, from the fixed-noise stream of ``seed``."""
    z = rng.latent_noise(num, model_config.latent_dim, seed, rng.FIXED_NOISE)
    with torch.no_grad():
        images: torch.Tensor = generator(z.to(device))
    return images.cpu()


def generate_grid(
    checkpoint_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    num: int = 64,
    seed: int = 0,
    device: str = "auto",
) -> Path:
    """Write a grid of ``num`` generated images to ``out`` (PNG)."""
    return save_grid(generate_images(checkpoint_path, num, seed=seed, device=device), out)


def generate_grid_from_hub(
    target: HubTarget,
    out: str | os.PathLike[str],
    *,
    num: int = 64,
    seed: int = 0,
    device: str = "auto",
) -> Path:
    """Like :func:`generate_grid`, from the generator a ganfriends run pushed to the Hub."""
    from ganfriends.hub.download import fetch_model

    if num < 1:
        raise ValueError("num must be >= 1")
    model = fetch_model(target)
    where = resolve_device(device)
    images = draw(model.generator.to(where), model.model_config, num, seed, where)
    return save_grid(images, out)
