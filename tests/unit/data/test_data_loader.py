"""BatchLoader: batches come back in the given order, with or without worker processes."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from gf_data_helpers import N_CELEBA, open_celeba_as, write_fashion_mnist, write_zip

from ganfriends.data import BatchLoader, FashionMNIST, load_batch, open_celeba
from ganfriends.data.files import FileDataset, ZipSource

BATCHES = [[11, 0], [5], [3, 9, 1, 7], [2, 2], [10, 8, 6, 4]]


@pytest.fixture(params=["folder", "zip"])
def celeba(
    request: pytest.FixtureRequest, tmp_path: Path, celeba_files: dict[str, bytes]
) -> FileDataset:
    nested = "img_align_celeba/img_align_celeba/"
    return open_celeba_as(
        request.param, tmp_path, celeba_files, zip_name="archive.zip", prefix=nested
    )


def image(ds: FileDataset, index: int) -> torch.Tensor:
    """``ds[index]``, which every image of these datasets can give."""
    found = ds[index]
    assert found is not None, f"image {index} unreadable"
    return found


def expected(ds: FileDataset) -> list[torch.Tensor]:
    return [torch.stack([image(ds, i) for i in b]) for b in BATCHES]


def test_without_workers_batches_come_back_in_order(celeba: FileDataset) -> None:
    out = list(BatchLoader(celeba, BATCHES))
    assert all(torch.equal(a, b) for (a, _), b in zip(out, expected(celeba), strict=True))


def test_with_two_workers_batches_come_back_in_order(celeba: FileDataset) -> None:
    loader = BatchLoader(celeba, BATCHES, num_workers=2)
    assert loader.uses_workers
    out = list(loader)
    assert [s for _, s in out] == [0] * len(BATCHES)
    assert all(torch.equal(a, b) for (a, _), b in zip(out, expected(celeba), strict=True))


def test_many_small_batches_through_workers_keep_their_order(celeba: FileDataset) -> None:
    order = torch.randperm(N_CELEBA * 4, generator=torch.Generator().manual_seed(0)) % N_CELEBA
    batches = [[int(i)] for i in order]
    out = list(BatchLoader(celeba, batches, num_workers=2))
    assert all(
        torch.equal(a[0], image(celeba, b[0])) for (a, _), b in zip(out, batches, strict=True)
    )


def test_a_lazy_generator_of_batches_is_consumed_in_order(celeba: FileDataset) -> None:
    out = list(BatchLoader(celeba, (b for b in BATCHES), num_workers=2))
    assert [a.shape[0] for a, _ in out] == [len(b) for b in BATCHES]


def test_an_in_memory_dataset_never_starts_workers(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm", n_train=12)
    ds = FashionMNIST(tmp_path / "fm")
    loader = BatchLoader(ds, BATCHES, num_workers=4)
    assert not loader.uses_workers
    out = [images for images, _ in loader]
    assert torch.equal(out[2], ds.get_batch(BATCHES[2])[0])


def test_load_batch_is_get_batch(celeba: FileDataset) -> None:
    a, skipped = load_batch(celeba, [1, 2])
    assert skipped == 0 and torch.equal(a, celeba.get_batch([1, 2])[0])


def test_a_zip_dataset_pickles_without_its_open_handle(celeba: FileDataset) -> None:
    clone = pickle.loads(pickle.dumps(celeba))
    assert torch.equal(image(clone, 4), image(celeba, 4))


def test_a_zip_handle_from_another_process_is_never_reused(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    members = {f"img_align_celeba/{n}": b for n, b in celeba_files.items()}
    ds = open_celeba(write_zip(tmp_path / "img_align_celeba.zip", members))
    source = ds.source
    assert isinstance(source, ZipSource)
    inherited = source._zip
    source._pid = -1  # as if this process were a forked child of the one that opened it
    assert ds[0] is not None
    assert source._zip is not inherited
    assert inherited is not None
    inherited.close()
    ds.close()


def test_negative_workers_are_rejected(celeba: FileDataset) -> None:
    with pytest.raises(ValueError, match="num_workers"):
        BatchLoader(celeba, BATCHES, num_workers=-1)
