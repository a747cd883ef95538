"""A federated device's local optimizer state as it crosses the database: Adam's per-parameter
moments and step counts, never its hyper-parameters (those always come from the run, not from a
student's upload)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganfriends.blobs import TensorSpec

OPTIMIZER_STATE_KEYS = ("exp_avg", "exp_avg_sq", "step")  # Adam's per-parameter state


def moments_spec(module: nn.Module, prefix: str) -> TensorSpec:
    """Adam's per-parameter state of ``module``'s parameters, named ``<prefix><i>.<key>``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, p in enumerate(module.parameters()):
        for key in OPTIMIZER_STATE_KEYS:
            shapes[f"{prefix}{i}.{key}"] = () if key == "step" else tuple(p.shape)
    return TensorSpec(shapes, dict.fromkeys(shapes, torch.float32))


def local_state_spec(generator: nn.Module, discriminator: nn.Module) -> TensorSpec:
    """Adam's per-parameter state for G (``g.<i>.*``) and D (``d.<i>.*``), as a device keeps it."""
    return moments_spec(generator, "g.").merged(moments_spec(discriminator, "d."))


def export_moments(optimizer: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """An optimizer's moments and step counts as copies on the CPU (never its hyper-parameters)."""
    out: dict[str, torch.Tensor] = {}
    for index, entries in optimizer.state_dict()["state"].items():
        for key in OPTIMIZER_STATE_KEYS:
            value = entries[key]
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            out[f"{prefix}{index}.{key}"] = tensor.detach().to("cpu", torch.float32, copy=True)
    return out


def export_local_state(
    optimizer_g: torch.optim.Optimizer, optimizer_d: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    """The local optimizers' moments and step counts (never their hyper-parameters)."""
    return export_moments(optimizer_g, "g.") | export_moments(optimizer_d, "d.")


def import_local_state(
    optimizer: torch.optim.Optimizer, state: dict[str, torch.Tensor], prefix: str
) -> None:
    """Load a device's moments into a fresh local optimizer built from the run's settings."""
    current = optimizer.state_dict()
    per_param: dict[int, dict[str, Any]] = {}
    for index in range(len(current["param_groups"][0]["params"])):
        # Copies: the optimizer updates its state in place, and the caller may keep ``state``.
        per_param[index] = {
            key: state[f"{prefix}{index}.{key}"].clone() for key in OPTIMIZER_STATE_KEYS
        }
    optimizer.load_state_dict({"state": per_param, "param_groups": current["param_groups"]})
