from __future__ import annotations

import gzip
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import psycopg

from ganfriends.db import Database, EmbeddedPostgres, migrate
from tests.acceptance.class_harness import ClassRoom, assert_same_model, crashed_run, one_worker_run
from tests.acceptance.conftest import cli_env
from tests.conftest import requires_fashion_mnist
from tests.waiting import wait_until

pytestmark = requires_fashion_mnist

UPDATES = 6
UNIT = 128
PER_UPDATE = 3
RUN = [
    "--images-per-work-unit", str(UNIT), "--workunits-per-update", str(PER_UPDATE),
    "--micro-batch", "32", "--max-iterations", str(UPDATES), "--work-unit-timeout", "3",
    "--seed", "5", "--sample-interval", "100",
]  # fmt: skip


def test_final_weights_do_not_depend_on_workers_or_crashes(room: ClassRoom) -> None:
    # Run A: one worker, nothing goes wrong.
    one_worker_run(room, "a", RUN)

    # Run B: three workers share the units.
    coordinator = room.coordinator("b", *RUN, "--new-run")
    workers = [room.worker(f"w{i}") for i in range(3)]
    assert coordinator.finish() == 0, coordinator.output
    for w in workers:
        assert w.finish() == 0, w.output

    # Run C: three workers, one killed mid-unit, and the coordinator killed and restarted.
    crashed_run(room, "c", RUN, crash_at=r"version 2/", workers=("w1", "w2"), late=("late-joiner",))

    assert_same_model(room.workdir, "b", "a", atol=1e-6, rtol=1e-5)  # 3 workers
    assert_same_model(room.workdir, "c", "a", atol=1e-6, rtol=1e-5)  # crashes

    # No image was lost or counted twice, and only accepted units are credited: a step's images
    # are trained once, computed twice (its D units and its G units, the default rule).
    status = room.status()
    expected = UPDATES * PER_UPDATE * UNIT
    assert status["images_seen"] == expected
    workers_status = status["workers"]
    assert isinstance(workers_status, list)
    assert sum(w["images"] for w in workers_status) == 2 * expected
    assert {w["name"] for w in workers_status} >= {"w1", "w2", "late-joiner"}


def test_worker_killed_mid_unit_has_its_unit_redone(room: ClassRoom) -> None:
    coordinator = room.coordinator("run", *RUN, "--max-backups", "0")
    victim = room.worker("victim")
    line = victim.wait_for(r"Processing work unit (\d+)")
    victim.popen.send_signal(signal.SIGKILL)
    unit = line.split()[3]
    survivor = room.worker("survivor")
    survivor.wait_for(rf"Work unit {unit} completed successfully")
    assert coordinator.finish() == 0, coordinator.output
    assert survivor.finish() == 0
    assert room.status()["images_seen"] == UPDATES * PER_UPDATE * UNIT


def test_first_ctrl_c_finishes_the_unit_then_exits(room: ClassRoom) -> None:
    room.coordinator("run", *RUN, "--max-iterations", "200")
    worker = room.worker("alice")
    line = worker.wait_for(r"Processing work unit (\d+)")
    worker.popen.send_signal(signal.SIGINT)
    assert worker.finish(timeout=60) == 130
    unit = line.split()[3]
    assert f"Work unit {unit} completed successfully" in worker.output
    assert "Stopped after finishing the current unit" in worker.output


def test_second_ctrl_c_gives_the_unit_back_at_once(room: ClassRoom) -> None:
    # Full-width model and big units: the unit is still computing when the signals land.
    coordinator = room.start(
        "coordinator",
        ["coordinator", "--output-dir", "run", "--images-per-work-unit", "2048",
         "--workunits-per-update", "1", "--micro-batch", "64", "--max-iterations", "3",
         "--work-unit-timeout", "600"],
    )  # fmt: skip
    coordinator.wait_for("new run")
    worker = room.worker("bob")
    worker.wait_for("Processing work unit 0")
    worker.popen.send_signal(signal.SIGINT)
    # Python runs a handler once per signal number however many arrived since it last looked:
    # a person's second Ctrl+C comes a moment later, and so does ours.
    time.sleep(0.5)
    worker.popen.send_signal(signal.SIGINT)
    assert worker.finish(timeout=60) == 130
    assert "giving the unit back" in worker.output
    assert "completed successfully" not in worker.output
    units = room.status()["units"]
    assert isinstance(units, dict)
    assert units["pending"] == 1  # immediately claimable, no 600 s lease to wait out


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_worker_with_different_data_refuses_to_start(room: ClassRoom, tmp_path: Path) -> None:
    other = tmp_path / "other-fashion-mnist"
    other.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 512), ("t10k", 64)):
        write_idx(other / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(other / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 9, (n,)))
    room.coordinator("run", *RUN)
    worker = room.worker("mallory", "--dataset-path", str(other))
    assert worker.finish() == 1
    assert "is not the run's" in worker.output


def test_demo_trains_and_leaves_no_process_behind(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "ganfriends", "demo", "--workers", "2", "--max-iterations", "3",
         "--workdir", str(workdir)],
        capture_output=True, text=True, env=cli_env(tmp_path), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (workdir / "outputs" / "samples" / "latest.png").is_file()
    assert (workdir / "outputs" / "checkpoints" / "latest.pt").is_file()
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and any(str(workdir) in part for part in p.info["cmdline"])
    ]
    assert leftovers == []


OUTAGE = "database unreachable"


def run_lock_held(url: str) -> bool:
    """Whether a live session holds the run's lock (run_locks names it)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ganfriends.run_locks l JOIN pg_stat_activity a"
            " ON a.pid = l.holder_pid AND a.backend_start = l.holder_started"
        ).fetchone()
    return row is not None and row[0] > 0


def test_coordinator_and_worker_ride_out_a_database_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", durable=False)
    url = server.start().local_url()
    with Database(url) as db:
        migrate(db)
    room = ClassRoom(url, tmp_path)
    try:
        coordinator = room.coordinator("run", *RUN, "--max-iterations", "10")
        worker = room.worker("steady")
        coordinator.wait_for(r"version 2/")
        server.stop()
        wait_until(
            lambda: coordinator.printed(OUTAGE) or worker.printed(OUTAGE),
            "the coordinator or the worker to notice the outage",
            timeout=60,
        )
        server.start()
        # The restart ended the session that held the run's lock: the coordinator must hold it
        # again (it checks every 2 s), so a second coordinator is still refused. The worker is
        # paused meanwhile so that the run cannot finish under the second one's feet.
        coordinator.wait_for(r"version [5-9]/")
        worker.popen.send_signal(signal.SIGSTOP)
        wait_until(lambda: run_lock_held(url), "the coordinator to take the run's lock again")
        second = room.coordinator("run2", *RUN)
        assert second.finish() == 1, second.output
        assert "another coordinator is already running run" in second.output
        worker.popen.send_signal(signal.SIGCONT)
        assert coordinator.finish() == 0, coordinator.output
        assert worker.finish() == 0, worker.output
        assert "version 20/20" in coordinator.output  # 10 alternating steps: D and G versions
    finally:
        room.close()
        server.stop()


def test_a_second_coordinator_for_the_same_run_is_refused(room: ClassRoom) -> None:
    first = room.coordinator("run", *RUN, "--max-iterations", "200")
    first.wait_for("new run")
    second = room.coordinator("run2", *RUN)
    assert second.finish() == 1
    assert "another coordinator is already running run" in second.output


def test_coordinator_records_sample_quality_in_the_database(
    db_url: str, tmp_path: Path, full_features_data_dir: Path
) -> None:
    room = ClassRoom(db_url, tmp_path)
    room.data_dir = full_features_data_dir  # reuse the session's trained feature classifier
    try:
        coordinator = room.coordinator(
            "run", *RUN, "--max-iterations", "4", "--eval-interval", "2", "--eval-samples", "64"
        )
        room.worker("w")
        assert coordinator.finish(timeout=600) == 0, coordinator.output
        # Scored every 2 steps; an alternating step is a D version and a G version.
        assert "version 4: FID" in coordinator.output and "version 8: FID" in coordinator.output
        status = room.status()
        assert status["fid_version"] == 8 and isinstance(status["fid"], float)
    finally:
        room.close()


def test_a_coordinator_notices_that_its_run_was_stopped_and_says_so(room: ClassRoom) -> None:
    coordinator = room.coordinator("run", *RUN, "--max-iterations", "200")
    coordinator.wait_for("new run")
    with psycopg.connect(room.db_url, autocommit=True) as conn:
        conn.execute("UPDATE ganfriends.runs SET state = 'stopped'")  # an operator, by hand
    assert coordinator.finish(timeout=60) == 1
    assert "is stopped in the database" in coordinator.output


def test_workers_started_together_stop_together_on_one_ctrl_c(room: ClassRoom) -> None:
    # What `worker --gpus` runs, with CPU workers: two workers side by side under one parent.
    coordinator = room.coordinator("run", *RUN, "--max-iterations", "200")
    coordinator.wait_for("new run")
    workers = [
        [sys.executable, "-m", "ganfriends", "worker", "--db", room.db_url, "--device", "cpu",
         "--name", f"pair-{i}", "--stop-grace", "1"]
        for i in range(2)
    ]  # fmt: skip
    driver = room.start_python(
        "pair",
        "import sys; from ganfriends.classroom.gpu_workers import run_workers; "
        f"sys.exit(run_workers({workers!r}, ['cpu0', 'cpu1']))",
    )
    driver.wait_for(r"\[cpu0\] Work unit \d+ completed")
    driver.wait_for(r"\[cpu1\] Work unit \d+ completed")

    driver.popen.send_signal(signal.SIGINT)

    assert driver.finish(timeout=60) == 130, driver.output
    for label in ("cpu0", "cpu1"):  # each finished or gave back its unit, then said goodbye
        assert re.search(rf"\[{label}\] (Stopped|Aborting)", driver.output), driver.output
    statuses = {w["name"]: w["status"] for w in room.status()["workers"]}
    assert statuses["pair-0"] == statuses["pair-1"] == "Offline"
