"""The real side of the comparison: which features, which held-out images, their cached features."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ganfriends import rng
from ganfriends.data import DATASET_NAMES, DatasetFingerprint, ImageDataset, make_dataset
from ganfriends.errors import DatasetError
from ganfriends.evaluation.common import (
    EVAL_SUBSET,
    EvalError,
    Progress,
    features_cache_dir,
    load_tensors,
    no_progress,
    save_tensors,
)
from ganfriends.evaluation.extractor import FeatureExtractor
from ganfriends.evaluation.inception import INSTALL_HINT

# Datasets whose labels let ganfriends train its own feature classifier. Not cifar10: it would
# train (3 channels work), but a CNN this small, in 3 epochs without augmentation, is expected to
# stay far below the recipe's 0.88 test accuracy on it, so its features would always be refused.
LABELLED_DATASETS = ("fashion-mnist", "mnist")
# The held-out split of each dataset; others use a seeded subset of all their images.
HELD_OUT_SPLITS = {"fashion-mnist": "test", "mnist": "test", "cifar10": "test", "celeba": "test"}
_LOAD_CHUNK = 500  # images loaded per get_batch call


def check_dataset_name(name: str, inception: str | os.PathLike[str] | None) -> None:
    """Fail fast (before any loading or training) on an unknown or unsupported dataset."""
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    if inception is None and name not in LABELLED_DATASETS:
        raise EvalError(
            f"FID on {name} needs Inception features: pass --inception PATH to default_1.pt, or "
            f"--inception auto after `{INSTALL_HINT}` (ganfriends' own feature classifier needs "
            f"class labels: {', '.join(LABELLED_DATASETS)} only)"
        )


def open_held_out(
    name: str,
    *,
    dataset_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    download: bool = True,
) -> tuple[ImageDataset, str]:
    """The dataset's held-out split and its name; ``all`` when it has none.

    CelebA's test split needs its partition file: without it, all images are used.
    """

    def open_split(split: str) -> ImageDataset:
        return make_dataset(
            name,
            path=dataset_path,
            image_size=image_size,
            split=split,
            data_dir=data_dir,
            download=download,
        )

    split = HELD_OUT_SPLITS.get(name)
    if split is not None:
        try:
            return open_split(split), split
        except DatasetError:
            if name != "celeba":
                raise
    fallback = "all" if name in ("celeba", "folder") else "train"
    return open_split(fallback), fallback


@dataclass
class RealFeatures:
    """Features of ``count`` held-out images drawn (in a seeded order) from ``fingerprint``."""

    features: torch.Tensor  # (N, dim) float32, CPU
    fingerprint: DatasetFingerprint
    split: str
    image_shape: tuple[int, int, int]  # (C, H, W) of the real images
    skipped: int  # unreadable images left out


def _cache_path(
    cache_dir: Path, extractor: FeatureExtractor, fingerprint: DatasetFingerprint, order: bytes
) -> Path:
    h = hashlib.sha256()
    for part in (extractor.key, fingerprint.digest, str(fingerprint.size)):
        h.update(part.encode() + b"\0")
    h.update(order)
    return cache_dir / f"real-{fingerprint.name}-{extractor.kind}-{h.hexdigest()[:16]}.safetensors"


def real_features(
    extractor: FeatureExtractor,
    dataset: ImageDataset,
    split: str,
    *,
    num_samples: int,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress = no_progress,
) -> RealFeatures:
    """Features of ``num_samples`` held-out images (all of them when there are fewer).

    The images are the first ``num_samples`` of a permutation drawn from (seed, EVAL_SUBSET), so a
    prefix of the result is itself a seeded random subset. The features are cached on disk (as
    safetensors) under a key of the extractor, the dataset and the exact image order: Inception
    features of 10,000 images take a quarter of an hour on a CPU.
    """
    shape = (dataset.channels, dataset.image_size, dataset.image_size)
    extractor.check_channels(dataset.channels, f"the {dataset.name} dataset")
    if num_samples < 2:
        raise EvalError(f"the number of samples must be at least 2, got {num_samples}")
    order = rng.permutation(len(dataset), seed, EVAL_SUBSET)[:num_samples]
    fingerprint = dataset.fingerprint()
    directory = Path(cache_dir) if cache_dir is not None else features_cache_dir()
    path = _cache_path(directory, extractor, fingerprint, order.numpy().tobytes())
    cached = load_tensors(path)
    if cached is not None and "features" in cached[0]:
        features = cached[0]["features"]
        skipped = int(cached[1].get("skipped", 0))
        if features.ndim == 2 and features.shape[1] == extractor.dim:
            return RealFeatures(features, fingerprint, split, shape, skipped)
    slow = " (~0.1-0.4 s per image on a CPU)" if extractor.kind == "inception" else ""
    progress(f"computing {extractor.kind} features of {len(order)} {fingerprint.name} images{slow}")
    parts, skipped = [], 0
    for start in range(0, len(order), _LOAD_CHUNK):
        images, missing = dataset.get_batch(order[start : start + _LOAD_CHUNK].tolist())
        skipped += missing
        if images.shape[0]:
            parts.append(extractor.features(images))
    if not parts:
        raise EvalError(f"none of the {len(order)} held-out {fingerprint.name} images is readable")
    features = torch.cat(parts)
    save_tensors(path, {"features": features}, {"skipped": skipped, "split": split})
    return RealFeatures(features, fingerprint, split, shape, skipped)
