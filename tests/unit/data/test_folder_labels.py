"""Labelled folders: class sub-folders (the ImageFolder layout) give the folder dataset labels,
and its fingerprint covers them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.image_folders import write_images

from ganfriends.data import FileDataset, fingerprint_mismatch, make_dataset
from ganfriends.data.files import ClassLabels
from ganfriends.errors import DatasetError

# Sorted by path: cat/1, cat/deep/2, dog/0 (a class's deeper folders are the class's).
LABELLED = ["dog/0.png", "cat/1.png", "cat/deep/2.png", "zebra/3.png"]


def open_labelled(root: Path) -> FileDataset:
    dataset = make_dataset("folder", path=root)
    assert isinstance(dataset, FileDataset)
    return dataset


def test_class_sub_folders_sorted_by_name_are_the_labels(tmp_path: Path) -> None:
    dataset = open_labelled(write_images(tmp_path / "pets", LABELLED))
    assert dataset.source.names == ["cat/1.png", "cat/deep/2.png", "dog/0.png", "zebra/3.png"]
    labels = dataset.labels()
    assert labels is not None and labels.dtype == np.int64
    assert labels.tolist() == [0, 0, 1, 2]
    assert dataset.num_classes() == 3


def test_images_at_the_top_and_in_sub_folders_are_refused_in_one_line(tmp_path: Path) -> None:
    root = write_images(tmp_path / "pets", [*LABELLED, "stray.png"])
    with pytest.raises(DatasetError, match=r"1 image at its top level \(e\.g\. stray\.png\)") as e:
        make_dataset("folder", path=root)
    assert "\n" not in str(e.value) and "class sub-folder" in str(e.value)


def test_moving_an_image_to_another_class_changes_the_fingerprint(tmp_path: Path) -> None:
    root = write_images(tmp_path / "pets", LABELLED)
    before = open_labelled(root).fingerprint()
    (root / "cat" / "1.png").rename(root / "dog" / "1.png")
    assert open_labelled(root).fingerprint().digest != before.digest


def test_the_digest_covers_the_labels_themselves(tmp_path: Path) -> None:
    # Same files, same names: only the labels differ.
    dataset = open_labelled(write_images(tmp_path / "pets", LABELLED))
    swapped = ClassLabels(("a", "b", "c"), np.array([1, 1, 0, 2], dtype=np.int64))
    relabelled = FileDataset("folder", dataset.source, dataset.image_size, labels=swapped)
    unlabelled = FileDataset("folder", dataset.source, dataset.image_size)
    digests = {d.fingerprint().digest for d in (dataset, relabelled, unlabelled)}
    assert len(digests) == 3


def test_a_labelled_folder_has_the_same_fingerprint_at_another_path(tmp_path: Path) -> None:
    root = write_images(tmp_path / "pets", LABELLED)
    shutil.copytree(root, tmp_path / "copy")
    assert open_labelled(tmp_path / "copy").fingerprint() == open_labelled(root).fingerprint()


def test_a_run_made_before_folders_had_labels_is_called_an_old_run(tmp_path: Path) -> None:
    dataset = open_labelled(write_images(tmp_path / "pets", LABELLED))
    unlabelled = FileDataset("folder", dataset.source, dataset.image_size)
    reason = fingerprint_mismatch(dataset, unlabelled.fingerprint().to_dict())
    assert reason is not None and "older ganfriends" in reason and "--new-run" in reason
