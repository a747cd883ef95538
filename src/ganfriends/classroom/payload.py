"""What crosses the database between coordinator and workers, as validated safetensors blobs.

- weights: a model's ``state_dict()`` (parameters and BatchNorm buffers), one blob per network;
  a run with ``--download-dtype`` also publishes a copy with its parameters rounded, which is
  what workers download;
- a unit result (:class:`ganfriends.rules.base.UnitResult`): the per-parameter tensors of G and D
  (``g.*``, ``d.*``: mean gradients or weight deltas, as the mode's rule defines), the BN buffers
  each network ended the unit with (``gbuf.*``, ``dbuf.*``), and the unit's loss statistics as
  metadata;
- a device's local optimizer state (per-device modes): its per-parameter tensors only, in a blob
  of its own; the hyper-parameters always come from the run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganfriends.blobs import MAX_MAGNITUDE, InvalidBlob, TensorSpec, decode, encode
from ganfriends.compression import (
    FLOAT32,
    Transfer,
    decompress,
    download_copy,
    download_spec,
    downloaded_values,
)
from ganfriends.rules.base import UnitResult
from ganfriends.step import StepStats

STAT_KEYS = ("d_loss_sum", "g_loss_sum", "d_real_sum", "d_fake_sum")
NON_NEGATIVE = (".exp_avg_sq", ".step", ".running_var")  # device-state tensors that are >= 0
# What one image can add to a statistic of an honest unit. The statistics are sums over the
# unit's images, so their bounds scale with its image count, and no sum of them overflows.
# - Losses: BCE-with-logits is softplus(-+logit) >= 0 and least squares is a square/2 >= 0; D's
#   loss is a real part plus a fake part. Per image, 1e4 is a logit of 1e4, or an LSGAN output
#   141 away from its target: a D that far out has diverged long before. A finite 1.7e308 (seen)
#   is refused, and two of them no longer sum to inf in the run's curves.
# - Scores: bce's is a probability in [0, 1]; lsgan's is D's raw output, which the loss bound
#   above keeps within 1 + sqrt(2e4) ~ 142 of 0. The payload does not know the run's loss, so
#   both get lsgan's bound.
MAX_LOSS_PER_IMAGE = 1e4
MAX_SCORE_PER_IMAGE = 1 + math.sqrt(2 * MAX_LOSS_PER_IMAGE)
# {key: (lowest, highest) value per image}
STAT_BOUNDS = {
    "d_loss_sum": (0.0, MAX_LOSS_PER_IMAGE),
    "g_loss_sum": (0.0, MAX_LOSS_PER_IMAGE),
    "d_real_sum": (-MAX_SCORE_PER_IMAGE, MAX_SCORE_PER_IMAGE),
    "d_fake_sum": (-MAX_SCORE_PER_IMAGE, MAX_SCORE_PER_IMAGE),
}


def _check_magnitudes(tensors: dict[str, torch.Tensor]) -> None:
    """Refuse values beyond :data:`MAX_MAGNITUDE` and BatchNorm variances that are not > 0
    (a zero or negative variance makes every sample NaN or inf)."""
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            continue
        if bool((tensor.abs() > MAX_MAGNITUDE).any()):
            raise InvalidBlob(f"tensor {name} holds values beyond {MAX_MAGNITUDE:g}")
        if name.endswith(".running_var") and bool((tensor <= 0).any()):
            raise InvalidBlob(f"tensor {name} holds variances that are not positive")


def encode_weights(module: nn.Module) -> bytes:
    """A network's parameters and buffers."""
    return encode(module.state_dict())


def encode_download(module: nn.Module, how: Transfer, seed: int) -> bytes | None:
    """The copy of a network that workers of a ``how`` run download (None for float32: they
    download the weights themselves)."""
    if how == FLOAT32:
        return None
    state = {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}
    parameters = {name for name, _ in module.named_parameters()}
    wire = download_copy(state, parameters, how, seed).wire
    assert wire is not None  # not float32
    return encode(wire)


def load_weights(module: nn.Module, data: bytes, how: Transfer = FLOAT32) -> None:
    """Validate a weights blob against ``module``'s own state, as published in ``how`` (the
    run's ``--download-dtype``; see :func:`ganfriends.compression.download_copy`), and load
    it."""
    parameters = {name for name, _ in module.named_parameters()}
    spec = download_spec(TensorSpec.of(module.state_dict()), parameters, how)
    tensors, _ = decode(data, spec)
    module.load_state_dict(downloaded_values(tensors, parameters))


def encode_result(result: UnitResult, spec: TensorSpec | None = None) -> bytes:
    """One blob for the whole result: the parameters as the rule compressed them
    (``result.wire``), else each in ``spec``'s dtype (the rule already rounded them to it)."""
    stats = {key: getattr(result.stats, key) for key in STAT_KEYS} | {
        "images": result.stats.images,
        "skipped": result.stats.skipped,
    }
    tensors = {**(result.parameters if result.wire is None else result.wire), **result.buffers}
    if spec is not None:
        tensors = {k: t.to(spec.dtypes.get(k, t.dtype)) for k, t in tensors.items()}
    return encode(tensors, stats)


def decode_result(data: bytes, spec: TensorSpec, *, max_images: int) -> UnitResult:
    """Validate and parse a result blob; ``max_images`` is the unit's size (a worker may not claim
    more images than the unit has, which would inflate its weight in the average)."""
    tensors, meta = decode(data, spec)
    # The spec fixed the names: buffers are the networks' (gbuf./dbuf.), the rest is the rule's,
    # combined in float32 whatever form it travelled in (bfloat16, or int8 times its scale).
    buffers = {k: v for k, v in tensors.items() if k.startswith(("gbuf.", "dbuf."))}
    parameters = decompress({k: v for k, v in tensors.items() if k not in buffers})
    _check_magnitudes(parameters | buffers)
    images, skipped = meta.get("images"), meta.get("skipped", 0)
    if not isinstance(images, int) or isinstance(images, bool) or not 0 < images <= max_images:
        raise InvalidBlob(f"result claims {images!r} images; the unit has {max_images}")
    if (
        not isinstance(skipped, int)
        or isinstance(skipped, bool)
        or not 0 <= skipped <= max_images - images
    ):
        raise InvalidBlob(f"result claims {skipped!r} unreadable images besides its {images}")
    values = {}
    for key in STAT_KEYS:
        value = meta.get(key)
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise InvalidBlob(f"result statistic {key} is missing or not a finite number")
        low, high = STAT_BOUNDS[key]
        if not low * images <= value <= high * images:
            raise InvalidBlob(
                f"result statistic {key} = {value:g} is outside what {images} image(s) can give "
                f"([{low * images:g}, {high * images:g}])"
            )
        values[key] = float(value)
    return UnitResult(parameters, buffers, StepStats(images=images, skipped=skipped, **values))


def encode_device_state(state: dict[str, torch.Tensor]) -> bytes:
    """A device's local optimizer state (tensors only)."""
    return encode(state)


def encode_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, bytes]:
    """A version's published inputs, one blob per tensor (a worker fetches only its own)."""
    return {name: encode({name: tensor}) for name, tensor in inputs.items()}


def decode_inputs(blobs: dict[str, bytes], spec: TensorSpec) -> dict[str, torch.Tensor]:
    """Validate and parse the input blobs a worker fetched (each against its name's spec)."""
    out: dict[str, torch.Tensor] = {}
    for name, data in blobs.items():
        if name not in spec.shapes:
            raise InvalidBlob(f"unexpected input {name!r}")
        one = TensorSpec({name: spec.shapes[name]}, {name: spec.dtypes[name]})
        out[name] = decode(data, one)[0][name]
    return out


def decode_device_state(data: bytes, spec: TensorSpec) -> dict[str, torch.Tensor]:
    """Validate a device-state blob against the spec of an honest state and parse it.

    Beyond names, shapes and finiteness: Adam's second moments, step counts and BatchNorm
    variances are never negative (a negative one makes the next device's step NaN).
    """
    tensors, _ = decode(data, spec)
    for name, tensor in tensors.items():
        if name.endswith(NON_NEGATIVE) and bool((tensor < 0).any()):
            raise InvalidBlob(f"tensor {name} holds negative values")
    _check_magnitudes(tensors)
    return tensors
