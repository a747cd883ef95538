"""How a unit's float32 results travel: ``--transfer-dtype``'s choices, as pure functions.

A choice (:class:`Transfer`) turns a float32 tensor into what the wire carries and back:

``float32``
    As it is (4 bytes a value).
``bfloat16``
    Rounded to the nearest bfloat16 (2 bytes). Biased: every run before the stochastic choices
    used it, and a stored run that says ``bfloat16`` keeps meaning it.
``bfloat16-stochastic``
    Rounded down or up to a neighbouring bfloat16 at random, with the probabilities that make
    the expected value the input (unbiased stochastic rounding; 2 bytes).
``int8``
    One float32 scale per tensor, ``max|x| / 127``, and each value as a signed byte ``q`` with
    ``q * scale`` the value rounded stochastically (unbiased) to a neighbouring multiple of the
    scale (1 byte, plus 4 per tensor). ``|x - q * scale| <= scale``.

The random draws come from a generator keyed by what the caller passes (the sync rule: the run's
seed, :data:`ganfriends.rng.TRANSFER` and the unit), so every worker, the coordinator and
``simulate`` agree bit for bit. Everything runs on the CPU, whatever device computed the result.

``--download-dtype`` uses the same choices for the weights workers download
(:func:`download_copy`): the coordinator keeps float32 weights and publishes beside them a copy
whose parameters are rounded (buffers travel as they are). Its draws are keyed by the network's
own content, so an unchanged network gets the same copy at every version (a worker holding it
downloads nothing) and every worker starts a unit from the same copy.

Top-k with error feedback is not here: its feedback is per-worker state carried from one unit to
the next, and a unit of a class run may be computed by any worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import torch

from ganfriends import rng
from ganfriends.blobs import SCALE_SUFFIX, TensorSpec

INT8_LEVELS = 127  # |q| <= 127: a symmetric range, -128 is never sent
BFLOAT16_DROPPED_BITS = 16  # bfloat16 is float32's upper half: sign, exponent, 7 mantissa bits


@dataclass(frozen=True)
class Transfer:
    """One ``--transfer-dtype`` choice: the wire dtype, how values are rounded to it, and
    whether each tensor travels with a scale."""

    name: str
    dtype: torch.dtype
    stochastic: bool = False
    scaled: bool = False


DOWNLOAD_CHOICES = ("float32", "bfloat16-stochastic", "int8")  # unbiased ones only

TRANSFERS = {
    t.name: t
    for t in (
        Transfer("float32", torch.float32),
        Transfer("bfloat16", torch.bfloat16),
        Transfer("bfloat16-stochastic", torch.bfloat16, stochastic=True),
        Transfer("int8", torch.int8, stochastic=True, scaled=True),
    )
}
FLOAT32 = TRANSFERS["float32"]


def transfer(name: str) -> Transfer:
    """The choice called ``name`` (the config has checked it is one)."""
    return TRANSFERS[name]


@dataclass(frozen=True)
class Compressed:
    """A set of tensors compressed: ``wire`` what travels (``transfer.dtype`` values, and a
    ``<name>:scale`` per tensor for int8; None for float32, where the values travel as they
    are), ``values`` what it stands for (float32, exactly what :func:`decompress` gives the
    receiver)."""

    wire: dict[str, torch.Tensor] | None
    values: dict[str, torch.Tensor]


def scale_name(name: str) -> str:
    """The wire name of tensor ``name``'s scale."""
    return name + SCALE_SUFFIX


def stochastic_bfloat16(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` (float32, any shape) rounded to bfloat16, unbiased: returned as float32 holding
    bfloat16 values, same shape.

    A float32's low 16 bits are the part bfloat16 drops. Adding a uniform draw in [0, 2^16) to
    the bit pattern carries into the kept half with probability (low bits) / 2^16, which is
    where ``x`` lies between its two bfloat16 neighbours: the expected value is ``x``. It works
    on the magnitude, so for negative values too, and across exponent boundaries. Non-finite
    values are left as they are (the receiver refuses them).
    """
    bits = x.contiguous().view(torch.int32)  # (same shape), x's bit pattern
    noise = torch.randint(
        0, 1 << BFLOAT16_DROPPED_BITS, x.shape, generator=generator, dtype=torch.int32
    )
    # No overflow: the largest finite float32's pattern plus 2^16 - 1 stays below 2^31 - 1.
    kept = (bits + noise) & ~((1 << BFLOAT16_DROPPED_BITS) - 1)
    return torch.where(torch.isfinite(x), kept.view(torch.float32), x)


def int8_scale(x: torch.Tensor) -> torch.Tensor:
    """The per-tensor scale of ``x`` (any shape): max |x| / 127, a 0-d float32 (0 for zeros)."""
    return (x.abs().max() / INT8_LEVELS).to(torch.float32)


def stochastic_int8(
    x: torch.Tensor, scale: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``x / scale`` rounded down or up at random, unbiased, as int8 in [-127, 127] (same shape
    as ``x``; zeros where the scale is 0)."""
    if float(scale) == 0.0:
        return torch.zeros(x.shape, dtype=torch.int8)
    # floor(v + u), u ~ U[0, 1): v's upper neighbour with probability frac(v), so E[q] = v.
    uniform = torch.rand(x.shape, generator=generator, dtype=torch.float32)
    q = torch.floor(x / scale + uniform).clamp_(-INT8_LEVELS, INT8_LEVELS)
    return q.to(torch.int8)


def dequantize(values: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """The float32 values a wire tensor stands for: ``values`` (any dtype, any shape) times
    its 0-d ``scale`` when it has one."""
    if scale is None:
        return values.to(torch.float32)
    return values.to(torch.float32) * scale


def compress(tensors: Mapping[str, torch.Tensor], how: Transfer, *key: int) -> Compressed:
    """``tensors`` (float32, on the CPU) as ``how`` sends them; stochastic choices draw from the
    generator of ``key``, tensor after tensor in name order (so the draws of a name do not
    depend on the order of the mapping)."""
    if how.dtype == torch.float32:
        return Compressed(None, dict(tensors))
    generator = rng.generator_for(*key) if how.stochastic else None
    wire: dict[str, torch.Tensor] = {}
    values: dict[str, torch.Tensor] = {}
    for name in sorted(tensors):
        x = tensors[name].to(torch.float32)
        scale = None
        if generator is None:  # bfloat16, nearest
            sent = x.to(torch.bfloat16)
        elif how.scaled:
            scale = int8_scale(x)
            sent = stochastic_int8(x, scale, generator)
            wire[scale_name(name)] = scale
        else:
            sent = stochastic_bfloat16(x, generator).to(torch.bfloat16)  # exact: bfloat16 values
        wire[name] = sent
        values[name] = dequantize(sent, scale)
    return Compressed(wire, values)


def decompress(wire: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 values of wire tensors (scales applied and dropped), as :func:`compress`'s
    ``values`` holds them."""
    return {
        name: dequantize(tensor, wire.get(scale_name(name)))
        for name, tensor in wire.items()
        if not name.endswith(SCALE_SUFFIX)
    }


def wire_spec(spec: TensorSpec, how: Transfer) -> TensorSpec:
    """What ``spec``'s float32 tensors look like on the wire: ``how``'s dtype, and for int8 a
    0-d float32 scale beside each."""
    dtypes = {name: how.dtype for name in spec.shapes}
    wire = TensorSpec(dict(spec.shapes), dtypes)
    if how.scaled:
        scales = {scale_name(name): () for name in spec.shapes}
        wire = wire.merged(TensorSpec(scales, dict.fromkeys(scales, torch.float32)))
    return wire


def content_key(tensors: Mapping[str, torch.Tensor]) -> int:
    """A 56-bit key of ``tensors``' names and bytes (SHA-256): equal states, equal keys."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return int.from_bytes(digest.digest()[:7], "big")


def download_copy(
    state: Mapping[str, torch.Tensor], parameters: Collection[str], how: Transfer, seed: int
) -> Compressed:
    """A network's ``state`` (its state_dict, on the CPU) as workers download it: the tensors
    named in ``parameters`` compressed by ``how``, keyed by (``seed``, DOWNLOAD, the state's
    content key); BatchNorm buffers as they are (a running variance rounded to 0 is not a
    variance, and the buffers are a few kB). ``wire`` is None for float32."""
    if how.dtype == torch.float32:
        return Compressed(None, dict(state))
    rounded = compress(
        {name: state[name] for name in parameters}, how, seed, rng.DOWNLOAD, content_key(state)
    )
    assert rounded.wire is not None  # not float32
    kept = {name: tensor for name, tensor in state.items() if name not in parameters}
    return Compressed({**rounded.wire, **kept}, {**state, **rounded.values})


def download_spec(spec: TensorSpec, parameters: Collection[str], how: Transfer) -> TensorSpec:
    """What a network of ``spec`` (its state_dict's) looks like in a ``how`` download: the
    ``parameters`` in :func:`wire_spec`'s form, buffers as they are."""
    rounded = TensorSpec(
        {name: spec.shapes[name] for name in parameters},
        {name: spec.dtypes[name] for name in parameters},
    )
    kept = {name: shape for name, shape in spec.shapes.items() if name not in parameters}
    return wire_spec(rounded, how).merged(
        TensorSpec(kept, {name: spec.dtypes[name] for name in kept})
    )


def downloaded_values(
    wire: Mapping[str, torch.Tensor], parameters: Collection[str]
) -> dict[str, torch.Tensor]:
    """The state a download stands for: ``parameters`` decompressed to float32 (as
    :func:`download_copy`'s ``values``), buffers as they came."""
    rounded = decompress(
        {k: v for k, v in wire.items() if k.removesuffix(SCALE_SUFFIX) in parameters}
    )
    kept = {k: v for k, v in wire.items() if k.removesuffix(SCALE_SUFFIX) not in parameters}
    return {**kept, **rounded}
