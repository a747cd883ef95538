"""A tiny class run for the doctor's tests: a folder of images on the student's machine and a run
of a small DCGAN on it, so that the doctor's timed unit takes a fraction of a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from ganfriends.classroom.state import create_run
from ganfriends.config import Config
from ganfriends.data.folder import open_folder
from ganfriends.db import Database
from ganfriends.doctor.checks import Report, Result
from ganfriends.doctor.student import check_student
from ganfriends.models import ModelConfig
from ganfriends.rules import SyncPlan

IMAGES = 32
IMAGE_SIZE = 32
SMALL_MODEL = ModelConfig(image_size=IMAGE_SIZE, channels=3, latent_dim=8, g_features=4,
                          d_features=4)  # fmt: skip


def write_images(folder: Path) -> Path:
    """``folder`` with :data:`IMAGES` small PNGs of distinct colours."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(IMAGES):
        colour = (8 * i % 256, 255 - 8 * i % 256, 37 * i % 256)
        Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), colour).save(folder / f"{i:03d}.png")
    return folder


def student_config(folder: Path) -> Config:
    """A student's worker settings: the run's images in ``folder``, on the CPU."""
    config = Config()
    config.data.dataset_path = str(folder)
    config.local.device = "cpu"
    return config


def folder_run(
    db: Database,
    folder: Path,
    *,
    fingerprint: dict[str, Any] | None = None,
    download_dtype: str = "float32",
) -> int:
    """A running sync run on the images of ``folder`` (with ``fingerprint`` instead of theirs),
    publishing its downloads in ``download_dtype``."""
    dataset = open_folder(folder, image_size=IMAGE_SIZE)
    config = Config()
    config.data.dataset = "folder"
    config.coordinator.download_dtype = download_dtype
    plan = SyncPlan(dataset_size=len(dataset), seed=0, images_per_unit=8, units_per_update=2,
                    micro_batch=8, epochs=1, update_rule="simultaneous")  # fmt: skip
    with db.transaction() as tx:
        return create_run(
            tx, name="doctor", mode="sync", plan=plan, config=config.to_dict(),
            model_config=SMALL_MODEL,
            fingerprint=fingerprint or dataset.fingerprint().to_dict(),
            lease_seconds=30, max_backups=0, max_units_per_claim=4, dataset=dataset,
        )  # fmt: skip


def student_doctor(
    config: Config, url: str, fingerprint: str | None = None
) -> tuple[int, dict[str, Result]]:
    """``ganfriends doctor URL`` in this process: its exit status and its results by check."""
    results: list[Result] = []
    status = check_student(config, url, fingerprint=fingerprint, report=Report(results.append))
    return status, {r.check: r for r in results}
