"""Tensors <-> bytes for the database, without pickle, validated on arrival.

Everything that crosses the database (weights, gradients, BatchNorm statistics, optimizer state) is
a safetensors buffer: an 8-byte header length, a JSON header (names, dtypes, shapes, offsets, and a
string->string metadata map) and raw little-endian data. Reading one never executes code — unlike
``torch.load`` of a pickle, which let any student run code on the seed project's coordinator.

A blob from another process is checked against what we expect before any of it is used: the byte
size, exactly the expected tensor names, their shapes and dtypes, and finite values. Failing any
check raises :class:`InvalidBlob`, with a reason fit for the rejection log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ganfriends.errors import GanError

HEADER_LIMIT = 16 * 2**20  # bytes: a safetensors header above this is hostile, not a model
# No honest gradient, weight delta, feedback, BatchNorm statistic or Adam moment comes near this;
# a finite 3e38 does, and its square overflows Adam's second moment to inf for good.
MAX_MAGNITUDE = 1e6
# An int8 tensor travels with a float32 scale named <name>:scale (ganfriends.compression); its
# values are q * scale with |q| <= 127, so a scale above this carries values no honest result has.
SCALE_SUFFIX = ":scale"
MAX_SCALE = MAX_MAGNITUDE / 127


class InvalidBlob(GanError):
    """A tensor blob failed validation."""


@dataclass(frozen=True)
class TensorSpec:
    """Expected names -> (shape, dtype) of a blob's tensors."""

    shapes: Mapping[str, tuple[int, ...]]
    dtypes: Mapping[str, torch.dtype]

    @property
    def nbytes(self) -> int:
        """Size of the raw tensor data."""
        return sum(
            math.prod(shape) * torch.empty((), dtype=self.dtypes[name]).element_size()
            for name, shape in self.shapes.items()
        )

    def max_blob_bytes(self) -> int:
        """Upper bound of an honest blob: data plus a generous header allowance."""
        return self.nbytes + 8 + 1024 + 256 * len(self.shapes)

    @classmethod
    def of(cls, tensors: Mapping[str, torch.Tensor]) -> TensorSpec:
        """The spec that ``tensors`` satisfy."""
        return cls(
            shapes={k: tuple(v.shape) for k, v in tensors.items()},
            dtypes={k: v.dtype for k, v in tensors.items()},
        )

    def merged(self, other: TensorSpec) -> TensorSpec:
        """Union of two specs with disjoint names."""
        overlap = set(self.shapes) & set(other.shapes)
        if overlap:
            raise ValueError(f"specs overlap on {sorted(overlap)[:3]}")
        return TensorSpec({**self.shapes, **other.shapes}, {**self.dtypes, **other.dtypes})


def parameter_spec(
    module: nn.Module, prefix: str, dtype: torch.dtype = torch.float32
) -> TensorSpec:
    """One tensor per parameter, named ``prefix + name`` (gradients or weights), of ``dtype``."""
    return TensorSpec(
        shapes={prefix + n: tuple(p.shape) for n, p in module.named_parameters()},
        dtypes={prefix + n: dtype for n, _ in module.named_parameters()},
    )


def buffer_spec(module: nn.Module, prefix: str) -> TensorSpec:
    """One tensor per buffer (BatchNorm running_mean / running_var / num_batches_tracked)."""
    return TensorSpec(
        shapes={prefix + n: tuple(b.shape) for n, b in module.named_buffers()},
        dtypes={prefix + n: b.dtype for n, b in module.named_buffers()},
    )


def encode(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None) -> bytes:
    """Serialise tensors (moved to CPU, made contiguous) and JSON-able metadata."""
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    meta = {"json": json.dumps(dict(metadata), sort_keys=True)} if metadata else None
    return bytes(st_save(cpu, metadata=meta))


def _read_header(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise InvalidBlob("blob is shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > HEADER_LIMIT or size > len(data) - 8:
        raise InvalidBlob(f"blob header claims {size} bytes, which does not fit the blob")
    try:
        header = json.loads(data[8 : 8 + size])
    # ValueError covers bad JSON, bad UTF-8 and integers past Python's digit limit; a hostile
    # nesting depth raises RecursionError.
    except (ValueError, RecursionError) as exc:
        raise InvalidBlob("blob header is not JSON") from exc
    if not isinstance(header, dict):
        raise InvalidBlob("blob header is not a JSON object")
    return header


def decode(
    data: bytes, spec: TensorSpec | None = None, *, require_finite: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Parse and validate a blob; returns (tensors, metadata).

    With a ``spec``, the blob must hold exactly its names, shapes and dtypes, and be no larger than
    an honest blob could be. Floating-point tensors must be finite unless ``require_finite=False``.
    """
    if spec is not None and len(data) > spec.max_blob_bytes():
        raise InvalidBlob(
            f"blob is {len(data)} bytes, more than the expected {spec.max_blob_bytes()}"
        )
    header = _read_header(data)  # cheap checks before safetensors allocates anything
    names = set(header) - {"__metadata__"}
    if spec is not None:
        missing, extra = set(spec.shapes) - names, names - set(spec.shapes)
        if missing or extra:
            detail = []
            if missing:
                detail.append(f"missing {sorted(missing)[:3]}")
            if extra:
                detail.append(f"unexpected {sorted(extra)[:3]}")
            raise InvalidBlob("blob has the wrong tensors: " + ", ".join(detail))
    try:
        tensors = st_load(data)
    # Whatever the parser raises on hostile input (KeyError for dtypes torch lacks, ...) is a bad
    # blob, never a crash of the process reading it.
    except Exception as exc:
        raise InvalidBlob(f"blob is not valid safetensors: {exc!r}"[:300]) from exc
    if spec is not None:
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(spec.shapes[name]):
                raise InvalidBlob(
                    f"tensor {name} has shape {tuple(tensor.shape)}, "
                    f"expected {tuple(spec.shapes[name])}"
                )
            if tensor.dtype != spec.dtypes[name]:
                raise InvalidBlob(f"tensor {name} is {tensor.dtype}, expected {spec.dtypes[name]}")
    if require_finite:
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise InvalidBlob(f"tensor {name} holds NaN or infinite values")
    for name, tensor in tensors.items():
        if name.endswith(SCALE_SUFFIX) and not _is_scale(tensor):
            raise InvalidBlob(f"tensor {name} is not a scale in [0, {MAX_SCALE:g}]")
    raw_meta = header.get("__metadata__") or {}
    try:
        metadata = json.loads(raw_meta["json"]) if "json" in raw_meta else {}
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidBlob("blob metadata is not JSON") from exc
    if not isinstance(metadata, dict):
        raise InvalidBlob("blob metadata is not a JSON object")
    return tensors, metadata


def _is_scale(tensor: torch.Tensor) -> bool:
    """A float32 scale of an int8 tensor: finite, not negative, at most :data:`MAX_SCALE`
    (NaN fails every comparison)."""
    return tensor.dtype == torch.float32 and bool(((tensor >= 0) & (tensor <= MAX_SCALE)).all())


def encode_optimizer_state(state: Mapping[str, Any]) -> bytes:
    """An ``Optimizer.state_dict()`` as a blob: per-parameter tensors + param_groups as metadata.

    Scalar entries of the per-parameter state (Adam's ``step`` may be a float or a 0-d tensor) are
    stored as tensors so they round-trip with their type.
    """
    tensors: dict[str, torch.Tensor] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{index}.{key}"] = tensor
    scalar_keys = sorted(
        f"{i}.{k}"
        for i, e in state["state"].items()
        for k, v in e.items()
        if not isinstance(v, torch.Tensor)
    )
    return encode(tensors, {"param_groups": state["param_groups"], "python_scalars": scalar_keys})


def decode_optimizer_state(data: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_optimizer_state`; load it with ``Optimizer.load_state_dict``."""
    tensors, metadata = decode(data, require_finite=True)
    if "param_groups" not in metadata:
        raise InvalidBlob("optimizer blob has no param_groups")
    python_scalars = set(metadata.get("python_scalars", []))
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, _, key = name.partition(".")
        value: Any = tensor.item() if name in python_scalars else tensor
        state.setdefault(int(index), {})[key] = value
    groups = metadata["param_groups"]
    for group in groups:
        # JSON has no tuples; torch's optimizers document betas as a tuple.
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}
