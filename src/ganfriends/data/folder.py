"""Any folder of images (``--dataset folder --dataset-path DIR``): unlabelled images at its top
level, or labelled ones in class sub-folders.

The labelled layout is torchvision's ImageFolder: ``DIR/<class>/<image>`` (deeper folders inside
a class belong to it), classes sorted by name and numbered ``0 .. C-1``, so the federated mode's
``--non-iid``, ``--balanced-sampling`` and kl-* weightings work on a user's own images. A folder
with images at both levels is refused: which of them would be unlabelled is a guess.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ganfriends.data.digests import default_cache_dir
from ganfriends.data.files import ClassLabels, DirectorySource, FileDataset, list_image_files
from ganfriends.data.images import IMAGE_EXTENSIONS
from ganfriends.errors import DatasetError


def open_folder(
    path: str | os.PathLike[str],
    *,
    image_size: int = 64,
    data_dir: str | os.PathLike[str] | None = None,
) -> FileDataset:
    """Every image under ``path``, ordered by relative path, as RGB ``(3, S, S)`` images, with
    class labels when they sit in class sub-folders (see the module's docstring).

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
        labels=class_labels(root, names),
    )


def class_labels(root: Path, names: Sequence[str]) -> ClassLabels | None:
    """The classes of ``names`` (sorted relative paths under ``root``) from their first folder;
    None when every image is at the top level; DatasetError when some are and some are not."""
    top = [n for n in names if "/" not in n]
    if len(top) == len(names):
        return None
    if top:
        nested = next(n for n in names if "/" in n)
        raise DatasetError(
            f"folder {root} has {_images(len(top))} at its top level (e.g. {top[0]}) and "
            f"{_images(len(names) - len(top))} in sub-folders (e.g. {nested}): put every image "
            "in a class sub-folder (DIR/<class>/<image>, labelled) or all at the top (unlabelled)"
        )
    of_images = [n.split("/", 1)[0] for n in names]
    classes = tuple(sorted(set(of_images)))
    index = {name: i for i, name in enumerate(classes)}
    return ClassLabels(classes, np.array([index[c] for c in of_images], dtype=np.int64))


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"
