"""Checkpoints: everything needed to rebuild the models and resume a run, without pickle.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
``torch.load(path, weights_only=True)`` reads it and a checkpoint from a stranger cannot run code.
Keys (shared by train-local and the coordinator):

- ``generator_state_dict``, ``discriminator_state_dict`` (BatchNorm running stats included)
- ``optimizer_g_state_dict``, ``optimizer_d_state_dict``
- ``epoch`` (completed epochs), ``step`` (optimizer steps taken), ``images_seen``
- ``model_config`` (``ModelConfig.to_dict()``)
- ``run_config`` (``Config.to_dict()``, secrets masked)
- ``format_version``
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganfriends.errors import CheckpointError
from ganfriends.models import (
    Discriminator,
    Generator,
    ModelConfig,
    make_discriminator,
    make_generator,
)

FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "generator_state_dict",
    "discriminator_state_dict",
    "optimizer_g_state_dict",
    "optimizer_d_state_dict",
    "epoch",
    "step",
    "model_config",
    "run_config",
)


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    generator_state_dict: dict[str, torch.Tensor]
    discriminator_state_dict: dict[str, torch.Tensor]
    optimizer_g_state_dict: dict[str, Any]
    optimizer_d_state_dict: dict[str, Any]
    epoch: int
    step: int
    images_seen: int
    model_config: ModelConfig
    run_config: dict[str, Any]

    def build_generator(self, device: torch.device | str = "cpu") -> Generator:
        """A generator with this checkpoint's architecture (any arch) and weights, in eval mode."""
        generator = make_generator(self.model_config)
        generator.load_state_dict(self.generator_state_dict)
        return generator.to(device).eval()

    def build_discriminator(self, device: torch.device | str = "cpu") -> Discriminator:
        """A discriminator with this checkpoint's architecture and weights, in eval mode."""
        discriminator = make_discriminator(self.model_config)
        discriminator.load_state_dict(self.discriminator_state_dict)
        return discriminator.to(device).eval()


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    epoch: int,
    step: int,
    images_seen: int,
    model_config: ModelConfig,
    run_config: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically (temp file + rename): a crash leaves the old one intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "generator_state_dict": generator.state_dict(),
        "discriminator_state_dict": discriminator.state_dict(),
        "optimizer_g_state_dict": optimizer_g.state_dict(),
        "optimizer_d_state_dict": optimizer_d.state_dict(),
        "epoch": int(epoch),
        "step": int(step),
        "images_seen": int(images_seen),
        "model_config": model_config.to_dict(),
        "run_config": run_config,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and check a checkpoint; any problem becomes a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only: never unpickle arbitrary objects from a file someone may have sent us.
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as exc:  # torch raises many types (IndexError, UnpicklingError...) on bad bytes
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"cannot read checkpoint {path}: not a ganfriends checkpoint")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise CheckpointError(
            f"cannot read checkpoint {path}: "
            f"not a ganfriends checkpoint (missing {', '.join(missing)})"
        )
    try:
        model_config = ModelConfig.from_dict(data["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: bad model_config ({exc})") from exc
    return Checkpoint(
        generator_state_dict=data["generator_state_dict"],
        discriminator_state_dict=data["discriminator_state_dict"],
        optimizer_g_state_dict=data["optimizer_g_state_dict"],
        optimizer_d_state_dict=data["optimizer_d_state_dict"],
        epoch=int(data["epoch"]),
        step=int(data["step"]),
        images_seen=int(data.get("images_seen", 0)),
        model_config=model_config,
        run_config=dict(data["run_config"]),
    )
