"""A federated device's local optimizer state as it crosses the database: Adam's per-parameter
moments and step counts, never its hyper-parameters (those always come from the run, not from a
student's upload)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganfriends.blobs import TensorSpec

OPTIMIZER_STATE_KEYS = ("exp_avg", "exp_avg_sq", "step")  # Adam's per-parameter state


def local_state_spec(generator: nn.Module, discriminator: nn.Module) -> TensorSpec:
    """Adam's per-parameter state for G (``g.<i>.*``) and D (``d.<i>.*``), as a device keeps it."""
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, module in (("g.", generator), ("d.", discriminator)):
        for i, p in enumerate(module.parameters()):
            shapes[f"{prefix}{i}.exp_avg"] = tuple(p.shape)
            shapes[f"{prefix}{i}.exp_avg_sq"] = tuple(p.shape)
            shapes[f"{prefix}{i}.step"] = ()
    return TensorSpec(shapes, dict.fromkeys(shapes, torch.float32))


def export_local_state(
    optimizer_g: torch.optim.Optimizer, optimizer_d: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    """The local optimizers' moments and step counts (never their hyper-parameters)."""
    out: dict[str, torch.Tensor] = {}
    for prefix, optimizer in (("g.", optimizer_g), ("d.", optimizer_d)):
        for index, entries in optimizer.state_dict()["state"].items():
            for key in OPTIMIZER_STATE_KEYS:
                value = entries[key]
                tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                out[f"{prefix}{index}.{key}"] = tensor.detach().to("cpu", torch.float32, copy=True)
    return out


def import_local_state(
    optimizer: torch.optim.Optimizer, state: dict[str, torch.Tensor], prefix: str
) -> None:
    """Load a device's moments into a fresh local optimizer built from the run's settings."""
    current = optimizer.state_dict()
    per_param: dict[int, dict[str, Any]] = {}
    for index in range(len(current["param_groups"][0]["params"])):
        per_param[index] = {key: state[f"{prefix}{index}.{key}"] for key in OPTIMIZER_STATE_KEYS}
    optimizer.load_state_dict({"state": per_param, "param_groups": current["param_groups"]})
