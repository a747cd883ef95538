"""What crosses the database between coordinator and workers, as validated safetensors blobs.

- weights: a model's ``state_dict()`` (parameters and BatchNorm buffers), one blob per network;
- a unit result: G and D mean gradients (``g.*``, ``d.*``), the BN buffers each network ended
  the unit with (``gbuf.*``, ``dbuf.*``), and the unit's loss statistics as metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ganfriends.blobs import InvalidBlob, TensorSpec, buffer_spec, decode, encode, parameter_spec
from ganfriends.step import StepStats

STAT_KEYS = ("d_loss_sum", "g_loss_sum", "d_real_sum", "d_fake_sum")


def encode_weights(module: nn.Module) -> bytes:
    """A network's parameters and buffers."""
    return encode(module.state_dict())


def load_weights(module: nn.Module, data: bytes) -> None:
    """Validate a weights blob against ``module``'s own state and load it."""
    tensors, _ = decode(data, TensorSpec.of(module.state_dict()))
    module.load_state_dict(tensors)


@dataclass
class UnitResult:
    """A worker's output for one unit."""

    gradients: dict[str, torch.Tensor]  # "g.<param>" and "d.<param>": means over the unit
    buffers: dict[str, torch.Tensor]  # "gbuf.<buffer>" and "dbuf.<buffer>"
    stats: StepStats

    @property
    def images(self) -> int:
        """Images the unit was computed on."""
        return self.stats.images


def result_spec(generator: nn.Module, discriminator: nn.Module) -> TensorSpec:
    """Exactly the tensors an honest unit result holds."""
    return (
        parameter_spec(generator, "g.")
        .merged(parameter_spec(discriminator, "d."))
        .merged(buffer_spec(generator, "gbuf."))
        .merged(buffer_spec(discriminator, "dbuf."))
    )


def collect_result(generator: nn.Module, discriminator: nn.Module, stats: StepStats) -> UnitResult:
    """Gather the gradients the shared step left in ``.grad`` and the networks' buffers (on CPU)."""
    gradients: dict[str, torch.Tensor] = {}
    for prefix, module in (("g.", generator), ("d.", discriminator)):
        for name, p in module.named_parameters():
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            gradients[prefix + name] = grad.detach().to("cpu", torch.float32)
    buffers = {
        prefix + name: b.detach().to("cpu")
        for prefix, module in (("gbuf.", generator), ("dbuf.", discriminator))
        for name, b in module.named_buffers()
    }
    return UnitResult(gradients, buffers, stats)


def encode_result(result: UnitResult) -> bytes:
    """One blob for the whole result."""
    stats = {key: getattr(result.stats, key) for key in STAT_KEYS} | {"images": result.stats.images}
    return encode({**result.gradients, **result.buffers}, stats)


def decode_result(data: bytes, spec: TensorSpec, *, max_images: int) -> UnitResult:
    """Validate and parse a result blob; ``max_images`` is the unit's size (a worker may not claim
    more images than the unit has, which would inflate its weight in the average)."""
    tensors, meta = decode(data, spec)
    images = meta.get("images")
    if not isinstance(images, int) or isinstance(images, bool) or not 0 < images <= max_images:
        raise InvalidBlob(f"result claims {images!r} images; the unit has {max_images}")
    values = {}
    for key in STAT_KEYS:
        value = meta.get(key)
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise InvalidBlob(f"result statistic {key} is missing or not a finite number")
        values[key] = float(value)
    gradients = {k: v for k, v in tensors.items() if k.startswith(("g.", "d."))}
    buffers = {k: v for k, v in tensors.items() if k.startswith(("gbuf.", "dbuf."))}
    return UnitResult(gradients, buffers, StepStats(images=images, **values))
