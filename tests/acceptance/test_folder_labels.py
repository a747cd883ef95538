"""A user's own labelled images (class sub-folders) in the federated mode's label features."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.conftest import TINY_MODEL, run_cli
from tests.image_folders import write_images


def test_simulate_splits_a_labelled_folder_non_iid(tmp_path: Path) -> None:
    # Three classes of eight images: --non-iid, --balanced-sampling and kl-exp need the labels.
    names = [f"{kind}/{i}.png" for kind in ("cat", "dog", "owl") for i in range(8)]
    pets = write_images(tmp_path / "pets", names)
    done = run_cli(
        ["simulate", "--mode", "federated", "--dataset", "folder", "--dataset-path", str(pets),
         "--image-size", "32", *TINY_MODEL, "--device", "cpu", "--devices", "2", "--rounds", "1",
         "--local-steps", "1", "--batch-size", "4", "--non-iid", "--magic-num", "8",
         "--balanced-sampling", "--weighting", "kl-exp", "--output-dir", "run"],
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "non-iid (magic 8)" in done.stdout
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
