"""``ganfriends worker`` of an older release than the run accepts: one line, what to install."""

from __future__ import annotations

from pathlib import Path

from ganfriends.classroom.state import create_run
from ganfriends.config import Config
from ganfriends.data import make_dataset
from ganfriends.db import Database
from ganfriends.models import ModelConfig
from ganfriends.rules import SyncPlan
from tests.acceptance.conftest import run_cli
from tests.image_folders import write_images
from tests.integration.queue_helpers import Raw
from tests.integration.test_version_gate import require

IMAGES = 8


def folder_run(db: Database, folder: Path) -> int:
    """A running sync run on the folder's images, as a coordinator would create it."""
    dataset = make_dataset("folder", path=folder, image_size=32)
    config = Config()
    config.data.dataset = "folder"
    plan = SyncPlan(
        dataset_size=IMAGES, seed=0, images_per_unit=4, units_per_update=2, micro_batch=4,
        epochs=1, max_updates=None, update_rule="simultaneous",
    )  # fmt: skip
    with db.transaction() as tx:
        return create_run(
            tx, name="gate", mode="sync", plan=plan, config=config.to_dict(),
            model_config=ModelConfig(image_size=32, channels=3, latent_dim=8, g_features=4,
                                     d_features=4),
            fingerprint=dataset.fingerprint().to_dict(), lease_seconds=30, max_backups=0,
            max_units_per_claim=1,
        )  # fmt: skip


def test_a_worker_older_than_the_run_stops_with_the_release_to_install(
    db_url: str, tmp_path: Path
) -> None:
    # Prepare: a run whose result format moved on past this release.
    folder = write_images(tmp_path / "pics", [f"{i}.png" for i in range(IMAGES)])
    with Database(db_url, max_size=1) as db:
        run_id = folder_run(db, folder)
    raw = Raw(db_url)
    try:
        require(raw, run_id, "99.0")

        # Execute
        done = run_cli(
            ["worker", "--db", db_url, "--dataset-path", str(folder), "--device", "cpu"],
            tmp_path,
            timeout=120,
        )

        # Assert: one line naming the release, no traceback, no worker on the leaderboard.
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.splitlines() == [
            "error: this run needs ganfriends >= 99.0: pip install -U 'ganfriends>=99.0'"
        ]
        assert raw.count("workers") == 0
    finally:
        raw.close()
