"""What the evaluation modules share: their error, rng purposes, the on-disk cache, progress."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ganfriends.blobs import InvalidBlob, TensorSpec, decode, encode
from ganfriends.data import default_data_dir
from ganfriends.errors import GanError

# rng purposes (the second element of an rng key). ganfriends.rng uses 1-4; these continue the
# numbering so that no evaluation stream can ever coincide with a training stream.
EVAL_NOISE = 5  # the generated samples: latent_noise(n, latent_dim, seed, EVAL_NOISE)
EVAL_SUBSET = 6  # which held-out images are the real samples
EVAL_KID = 7  # the random subsets of KID
FEATURE_NET = 8  # the feature classifier's initial weights and data order

Progress = Callable[[str], None]


class EvalError(GanError):
    """The evaluation cannot run."""


def no_progress(message: str) -> None:
    """A :data:`Progress` that says nothing."""


def features_cache_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<data dir>/features``: trained feature nets and real-image features."""
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return base / "features"


def save_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> Path:
    """Write a safetensors file atomically (temp file + rename): readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(encode(tensors, metadata))
    os.replace(tmp, path)
    return path


def load_tensors(
    path: Path, spec: TensorSpec | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """A cache file's tensors and metadata, or None when it is missing or unusable.

    A damaged or foreign cache file is a cache miss (the caller rebuilds and overwrites it), never a
    crash: the cache holds nothing that cannot be recomputed.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return decode(data, spec, require_finite=True)
    except InvalidBlob:
        return None
