"""One RunStatus for ``ganfriends status`` and the dashboard, read through typed queries."""

from __future__ import annotations

import pytest

from ganfriends.dashboard import data
from ganfriends.db import Database
from ganfriends.run_status import Losses, read_status
from tests.integration.queue_helpers import IMAGES_PER_UNIT, Raw, new_run
from tests.integration.test_dashboard_queries import add_worker, publish, set_worker


def test_status_and_the_dashboard_show_the_same_status(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=2, epochs=2)
    set_worker(raw, add_worker(db, run_id, "alice"), units=2, images=2 * IMAGES_PER_UNIT)
    for version, ago in ((1, 20), (2, 10), (3, 0)):
        publish(db, raw, run_id, version, ago)
    db.execute("insert_units", run_id=run_id, version=3, unit_indices=[6, 7], devices=[None, None])

    printed = read_status(db)
    shown = data.snapshot(db, run_id)

    assert printed is not None and shown is not None
    assert printed.version == 3 and printed.images_per_second > 0
    assert shown.status == printed


def test_the_latest_losses_take_ds_from_the_update_before_a_g_only_one(
    db: Database, raw: Raw
) -> None:
    # An alternating class step records D's version (no g_loss) then G's (no d_loss).
    run_id = new_run(db)
    publish(db, raw, run_id, 1, 0)
    for version, d_loss, g_loss in ((2, 7.0, None), (3, None, 9.0), (4, 3.0, None)):
        db.execute("advance_run", run_id=run_id, new_version=version, images=1, complete=False)
        db.execute(
            "insert_update", run_id=run_id, version=version, epoch=0.0, images=1,
            images_seen=version, d_loss=d_loss, g_loss=g_loss, d_real=0.25, d_fake=0.75,
            contributors=1, wait_seconds=0.0, norms=None,
        )  # fmt: skip

    losses = Losses.from_row(db.fetch_one("latest_update", run_id=run_id))

    # Version 4 has no G yet: the latest whole step is version 3, with version 2's D.
    assert losses == Losses(d_loss=7.0, g_loss=9.0, d_real=0.25, d_fake=0.75)
    assert data.loss_history(db, run_id)[-1]["d_loss"] == pytest.approx(losses.d_loss)
