"""The dashboard's queries and the values it derives from them, on a real PostgreSQL.

A run is seeded through the package's own named queries (create_run, register_worker,
insert_update, insert_sample, record_rejection); only moving time (heartbeat ages, update
timestamps) and crediting workers use test-only SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ganfriends.compat import WORKER_VERSION
from ganfriends.dashboard import data
from ganfriends.db import Database, DatabaseError
from tests.integration.queue_helpers import IMAGES_PER_UNIT, Raw, new_run

PER_UPDATE = 2  # units: 640 images are 10 units an epoch, so 5 updates an epoch
IMAGES = PER_UPDATE * IMAGES_PER_UNIT


@pytest.fixture
def raw(db_url: str) -> Iterator[Raw]:
    connection = Raw(db_url)
    yield connection
    connection.close()


def add_worker(
    db: Database,
    run_id: int,
    name: str,
    *,
    hostname: str = "host-a",
    cpu_cores: int = 4,
    ram_gb: float | None = 16.0,
    gpu_name: str | None = None,
    gpu_vram_gb: float | None = None,
) -> int:
    row = db.fetch_one(
        "register_worker", run_id=run_id, name=name, hostname=hostname,
        device="cuda" if gpu_name else "cpu", gpu_name=gpu_name, gpu_vram_gb=gpu_vram_gb,
        cpu_cores=cpu_cores, ram_gb=ram_gb, version=WORKER_VERSION,
    )  # fmt: skip
    assert row is not None
    return int(row["id"])


def set_worker(raw: Raw, worker_id: int, *, seconds_ago: float = 0.0, **columns: Any) -> None:
    """Credit work and age the heartbeat (test-only SQL: the coordinator credits via results)."""
    raw.rows(
        "UPDATE workers SET units_done = %(units)s, images_done = %(images)s,"
        " state = %(state)s, last_heartbeat = now() - make_interval(secs => %(ago)s)"
        " WHERE id = %(id)s RETURNING id",
        id=worker_id, units=columns.get("units", 0), images=columns.get("images", 0),
        state=columns.get("state", "active"), ago=seconds_ago,
    )  # fmt: skip


def publish(db: Database, raw: Raw, run_id: int, version: int, seconds_ago: float) -> None:
    """What an update leaves behind: the run advanced, its losses recorded ``seconds_ago``."""
    assert (
        db.execute("advance_run", run_id=run_id, new_version=version, images=IMAGES, complete=False)
        == 1
    )
    db.execute(
        "insert_update", run_id=run_id, version=version, epoch=version * PER_UPDATE / 10,
        images=IMAGES, images_seen=version * IMAGES, d_loss=1.0 + version, g_loss=2.0 + version,
        d_real=0.5 + version / 100, d_fake=0.4 - version / 100, contributors=2, wait_seconds=1.0,
        norms=None,
    )  # fmt: skip
    # Measured from the run's creation, one fixed instant: now() moves on between the calls (by
    # up to a second on a loaded machine), which would stretch the spacing the tests set.
    raw.rows(
        "UPDATE updates SET created_at = (SELECT created_at FROM runs WHERE id = %(run_id)s)"
        " - make_interval(secs => %(ago)s)"
        " WHERE run_id = %(run_id)s AND version = %(version)s RETURNING version",
        run_id=run_id, version=version, ago=seconds_ago,
    )  # fmt: skip


def test_run_selector_lists_newest_first_and_defaults_to_the_running_run(db: Database) -> None:
    older = new_run(db, name="older")
    newer = new_run(db, name="newer")
    db.execute("stop_run", run_id=newer)

    runs = data.list_runs(db)

    assert [r.run_id for r in runs] == [newer, older]
    assert [r.latest for r in runs] == [False, True]  # the running one, as `ganfriends status`
    assert runs[0].state == "stopped" and runs[1].state == "running"
    assert runs[1].label.startswith(f"run {older}: older (running, version 0, ")


def test_snapshot_shows_progress_units_eta_and_the_leaderboard(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=PER_UPDATE, epochs=2)  # 10 updates
    alice = add_worker(db, run_id, "alice", gpu_name="RTX 4090", gpu_vram_gb=24.0)
    bob = add_worker(db, run_id, "bob", hostname="host-b", ram_gb=None)
    carol = add_worker(db, run_id, "carol", hostname="host-c")
    set_worker(raw, alice, units=4, images=4 * IMAGES_PER_UNIT)
    set_worker(raw, bob, units=2, images=2 * IMAGES_PER_UNIT, seconds_ago=120)
    set_worker(raw, carol, state="stopped", seconds_ago=5)
    for version, ago in ((1, 20), (2, 10), (3, 0)):
        publish(db, raw, run_id, version, ago)
    db.execute("insert_units", run_id=run_id, version=3, unit_indices=[6, 7], devices=[None, None])

    snap = data.snapshot(db, run_id)

    assert snap is not None
    s = snap.status
    assert (s.version, s.total_updates, s.epochs, s.images_seen) == (3, 10, 2, 3 * IMAGES)
    assert s.epoch == pytest.approx(0.6)
    assert snap.epoch_percent == pytest.approx(60.0)
    assert snap.run_percent == pytest.approx(30.0)
    assert s.units == {"pending": 2, "claimed": 0, "expired": 0, "done": 0}
    assert (s.d_loss, s.g_loss) == (4.0, 5.0)
    # 3 updates 20 s apart span 2 intervals: 2 x 128 images in 20 s; 7 updates left.
    assert s.images_per_second == pytest.approx(2 * IMAGES / 20, rel=0.05)
    assert snap.eta_seconds == pytest.approx(7 * IMAGES / s.images_per_second)
    assert [(w.name, w.units, w.images, w.status) for w in s.workers] == [
        ("alice", 4, 256, "Active"),
        ("bob", 2, 128, "Idle"),
        ("carol", 0, 0, "Offline"),
    ]
    assert s.workers[0].hardware == "RTX 4090, 24 GB VRAM, 4 cores, 16 GB RAM"
    assert s.workers[1].hardware == "cpu, 4 cores"
    assert snap.credited_images == 384


def test_snapshot_of_a_finished_run_has_no_eta_and_a_full_epoch(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=PER_UPDATE, max_updates=5)  # ends on epoch 1's end
    for version in range(1, 6):
        publish(db, raw, run_id, version, 10 - version)
    raw.rows("UPDATE runs SET state = 'complete' WHERE id = %(id)s RETURNING id", id=run_id)

    snap = data.snapshot(db, run_id)

    assert snap is not None
    assert snap.eta_seconds is None
    assert (snap.epoch_percent, snap.run_percent) == (100.0, 100.0)
    assert data.snapshot(db, run_id + 1000) is None


def test_resources_sum_active_workers_counting_each_host_once(db: Database, raw: Raw) -> None:
    run_id = new_run(db)
    other_run = new_run(db)
    add_worker(db, run_id, "alice", gpu_name="RTX 3060", gpu_vram_gb=12.0)
    add_worker(db, run_id, "alice-cpu")  # same host: its 4 cores and 16 GB are alice's
    add_worker(db, run_id, "bob", hostname="host-b", cpu_cores=8, ram_gb=32.0,
               gpu_name="A100", gpu_vram_gb=40.0)  # fmt: skip
    set_worker(raw, add_worker(db, run_id, "idle", hostname="host-c"), seconds_ago=120)
    set_worker(raw, add_worker(db, run_id, "gone", hostname="host-d"), state="stopped")
    add_worker(db, other_run, "elsewhere", hostname="host-e")

    assert data.resources(db, run_id) == data.Resources(
        workers=3, hosts=2, cpu_cores=12, ram_gb=48.0, gpus=2, gpu_vram_gb=52.0
    )
    assert data.resources(db, run_id + 1000) == data.Resources(0, 0, 0, 0.0, 0, 0.0)


def test_loss_history_and_smoothed_throughput(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=PER_UPDATE, epochs=2)
    # Updates every 2 s, then the coordinator is away for 100 s, then every 2 s again.
    for version, ago in ((1, 120), (2, 118), (3, 116), (4, 114), (5, 14), (6, 12), (7, 10)):
        publish(db, raw, run_id, version, ago)

    history = data.loss_history(db, run_id)
    assert [r["version"] for r in history] == list(range(1, 8))
    assert [r["g_loss"] for r in history] == [2.0 + v for v in range(1, 8)]
    assert history[0]["d_real"] == pytest.approx(0.51)
    assert history[0]["d_fake"] == pytest.approx(0.39)

    points = data.throughput_history(db, run_id, smoothing=2)
    # No point for the first update nor across the 100 s gap (it would show ~1 img/s).
    assert [p["version"] for p in points] == [2, 3, 4, 6, 7]
    for p in points:
        assert p["images_per_second"] == pytest.approx(IMAGES / 2, rel=0.01)
    assert points[0]["time"] < points[-1]["time"]
    assert data.throughput_history(db, run_id + 1000) == []


def test_samples_are_stored_once_per_version_and_read_back(db: Database) -> None:
    run_id = new_run(db)
    other = new_run(db)
    first, second = b"\x89PNG first grid", b"\x89PNG second grid"
    db.execute("insert_sample", run_id=run_id, version=10, png=first)
    db.execute("insert_sample", run_id=run_id, version=20, png=second)
    # A coordinator stopped right after a periodic grid writes the same version again.
    assert db.execute("insert_sample", run_id=run_id, version=20, png=b"again") == 0
    db.execute("insert_sample", run_id=other, version=5, png=b"other run")

    assert data.sample_versions(db, run_id) == [10, 20]
    assert data.sample_png(db, run_id, 10) == first
    assert data.sample_png(db, run_id, 20) == second
    assert data.sample_png(db, run_id, 30) is None
    assert data.sample_versions(db, other) == [5]


def test_rejections_per_worker_and_recent(db: Database) -> None:
    run_id = new_run(db)
    alice = add_worker(db, run_id, "alice")
    bob = add_worker(db, run_id, "bob")
    for worker, version, reason in (
        (alice, 1, "non-finite gradient"),
        (bob, 1, "missing tensor"),
        (alice, 2, "wrong shape"),
        (None, 3, "worker deleted"),
    ):
        db.execute(
            "record_rejection", run_id=run_id, worker_id=worker, version=version,
            unit_index=version * 2, reason=reason,
        )  # fmt: skip

    by_worker = data.rejections_by_worker(db, run_id)
    assert [(r["name"], r["rejected"], r["last_reason"]) for r in by_worker] == [
        ("alice", 2, "wrong shape"),
        ("bob", 1, "missing tensor"),
        ("unknown", 1, "worker deleted"),
    ]
    recent = data.recent_rejections(db, run_id, limit=3)
    assert [(r["name"], r["version"], r["unit_index"]) for r in recent] == [
        ("unknown", 3, 6),
        ("alice", 2, 4),
        ("bob", 1, 2),
    ]
    assert data.rejections_by_worker(db, run_id + 1000) == []


def test_the_dashboard_connection_cannot_write(db_url: str, db: Database) -> None:
    run_id = new_run(db)
    with data.open_database(db_url) as dashboard:
        assert [r.run_id for r in data.list_runs(dashboard)] == [run_id]
        with pytest.raises(DatabaseError) as refused:
            dashboard.execute("insert_sample", run_id=run_id, version=1, png=b"x")
        assert refused.value.sqlstate == "25006"  # read_only_sql_transaction
        with pytest.raises(DatabaseError), dashboard.transaction() as tx:
            tx.execute("stop_run", run_id=run_id)
    assert data.sample_versions(db, run_id) == []


def test_urls_keep_their_options_and_the_page_never_shows_a_password() -> None:
    url = "postgresql://alice:s3cret@db.example:5433/ganfriends?options=-c%20work_mem%3D8MB"
    read_only = data.read_only_url(url)
    assert "work_mem=8MB" in read_only and "default_transaction_read_only=on" in read_only
    assert data.safe_location(url) == "alice@db.example:5433/ganfriends"
    assert "s3cret" not in data.safe_location(url)
    with pytest.raises(DatabaseError):
        data.read_only_url("not a url = = =")


def test_this_version_offers_fid_and_its_query_runs_on_the_schema(db: Database) -> None:
    # The page shows FID only when has_fid(): this version records FID, so it must say so, and
    # the query must run on the migrated schema (a run without evaluations has no FID yet).
    assert data.has_fid()
    assert data.fid_history(db, new_run(db)) == []


def test_fid_history_reads_the_recorded_scores(db: Database) -> None:
    run_id = new_run(db)
    for version, fid in ((20, 310.5), (10, 402.0)):
        db.execute(
            "insert_evaluation", run_id=run_id, version=version, images_seen=version * IMAGES,
            fid=fid, kid_mean=0.1, kid_std=0.01, precision=0.5, recall=0.4, num_samples=2000,
        )  # fmt: skip

    assert data.has_fid()
    assert [(r["version"], r["fid"]) for r in data.fid_history(db, run_id)] == [
        (10, 402.0),
        (20, 310.5),
    ]
