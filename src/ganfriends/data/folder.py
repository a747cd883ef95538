"""Any folder of images (``--dataset folder --dataset-path DIR``), searched recursively."""

from __future__ import annotations

import os
from pathlib import Path

from ganfriends.data.digests import default_cache_dir
from ganfriends.data.files import DirectorySource, FileDataset, list_image_files
from ganfriends.data.images import IMAGE_EXTENSIONS
from ganfriends.errors import DatasetError


def open_folder(
    path: str | os.PathLike[str],
    *,
    image_size: int = 64,
    data_dir: str | os.PathLike[str] | None = None,
) -> FileDataset:
    """Every image under ``path``, ordered by relative path, as RGB ``(3, S, S)`` images.

    ``data_dir`` holds the cache of the files' digests (default: the default data dir).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist: check --dataset-path")
    if not root.is_dir():
        raise DatasetError(f"--dataset-path {root} is not a folder: pass a folder of images")
    names = list_image_files(root)
    if not names:
        kinds = " ".join(IMAGE_EXTENSIONS)
        raise DatasetError(
            f"no images in folder {root} (looked recursively for {kinds}): check --dataset-path"
        )
    return FileDataset(
        "folder",
        DirectorySource(root, names),
        image_size=image_size,
        channels=3,
        digest_cache=default_cache_dir(data_dir),
    )
