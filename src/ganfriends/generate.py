"""``ganfriends generate``: draw a grid of images from a trained generator."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ganfriends import rng
from ganfriends.device import resolve_device
from ganfriends.grid import save_grid
from ganfriends.training.checkpoint import load_checkpoint


def generate_images(
    checkpoint_path: str | os.PathLike[str], num: int, *, seed: int = 0, device: str = "auto"
) -> torch.Tensor:
    """``num`` images (num, C, H, W) in [-1, 1] from the checkpoint's generator in eval mode."""
    if num < 1:
        raise ValueError("num must be >= 1")
    checkpoint = load_checkpoint(checkpoint_path)
    target = resolve_device(device)
    generator = checkpoint.build_generator(target)
    z = rng.latent_noise(num, checkpoint.model_config.latent_dim, seed, rng.FIXED_NOISE)
    with torch.no_grad():
        images: torch.Tensor = generator(z.to(target))
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
