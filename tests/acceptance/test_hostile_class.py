"""One hostile student beside two honest ones, through the real CLI and a real PostgreSQL.

The attacker (``benchmarks/hostile_student.py``) does everything of issue #20 at once through
its own student login: as many workers as it may register, huge claims and backups held alive
without an upload, tampered uploads of every kind validation and screening refuse, every lock
its role can take squatted, and a flood of wake-ups. The class must finish with the model of the
same run without the attacker, bit for bit, within the stated delay, with the honest students
credited and unflagged and the attacker quarantined.
"""

from __future__ import annotations

import time

from benchmarks.hostile_student import HostileStudent

from ganfriends.config import Config
from tests.acceptance.class_harness import ClassRoom, assert_same_model
from tests.conftest import requires_fashion_mnist
from tests.integration.conftest import class_admin  # noqa: F401 (the fixture)
from tests.integration.student_helpers import new_student

pytestmark = requires_fashion_mnist

LEASE = 3.0  # seconds: a short unit timeout, so that hoarding shows within the test
RUN = [
    "--images-per-work-unit", "64", "--workunits-per-update", "3", "--micro-batch", "32",
    "--max-iterations", "30", "--work-unit-timeout", str(LEASE), "--seed", "9",
    "--sample-interval", "100",
]  # fmt: skip
# The stated bound on what one student can delay a class by, in total (docs/running-a-class-
# safely.md): its strikes before quarantine (3), each costing at most a lease held to its bound
# (3 unit timeouts) and an idle worker's longest poll (5 s) when no backup copy is free.
BOUND_SECONDS = 3 * (3 * LEASE + Config().worker.poll_interval)


def run_class(
    room: ClassRoom,
    out: str,
    students: dict[str, str],
    *extra: str,
    attacker: HostileStudent | None = None,
) -> float:
    """One class run: the honest students' workers wait for it first (polling often, so that
    both join at once), then the coordinator starts it (and the attacker joins); its seconds
    from the coordinator's start to its end."""
    room.extra_env["GANFRIENDS_WORKER_POLL_INTERVAL"] = "0.1"
    workers = [room.worker(name, db_url=url) for name, url in students.items()]
    for worker in workers:
        worker.wait_for("Waiting for the instructor to start a run")
    started = time.monotonic()
    coordinator = room.coordinator(out, *RUN, *extra)
    coordinator.wait_for("new run")
    if attacker is not None:
        attacker.start()
    code = coordinator.finish(timeout=300)
    seconds = time.monotonic() - started
    if attacker is not None:
        print("\n".join(attacker.stop().lines()))
    assert code == 0, coordinator.output
    for worker in workers:
        assert worker.finish() == 0, worker.output
    return seconds


def test_a_hostile_student_beside_two_honest_ones_wastes_only_their_own_work(
    room: ClassRoom,
    db_url: str,
    class_admin: str,  # noqa: F811 (the fixture)
) -> None:
    alice, bob, mallory = (new_student(db_url, class_admin) for _ in range(3))
    honest = {"alice": alice.url, "bob": bob.url}

    honest_seconds = run_class(room, "honest", honest)
    attacker = HostileStudent(mallory.url, data_dir=str(room.data_dir))
    attacked_seconds = run_class(room, "attacked", honest, "--new-run", attacker=attacker)
    report = attacker.report
    print(f"honest {honest_seconds:.1f} s, attacked {attacked_seconds:.1f} s")

    # The attacker tried everything and got nothing in.
    assert report.registrations_refused > 0 and report.units_claimed > 0
    assert sum(report.uploads.values()) >= 3 and report.units_hoarded > 0
    assert report.squats >= 1 and report.quarantined_at is not None

    # The model is the honest run's, bit for bit: every copy of the attacker's was refused.
    assert_same_model(room.workdir, "attacked", "honest")

    # Honest students credited and unflagged; the attacker quarantined and shown as such.
    status = room.status()
    standing = {s["student"]: s for s in status["students"]}
    assert standing[mallory.name]["quarantined"]
    for student in (alice, bob):
        assert standing[student.name]["rejections"] == 0
        assert not standing[student.name]["quarantined"]
    credited = {w["name"]: w["units"] for w in status["workers"]}
    assert credited["alice"] > 0 and credited["bob"] > 0
    assert all(credited.get(f"mallory{i}", 0) == 0 for i in range(12))

    # What the instructor reads: the attacker in red, with what they did, and how to lift it.
    listed = room.start("students list", ["students", "list"])
    assert listed.finish() == 0, listed.output
    flagged = [line for line in listed.lines if "strike(s)" in line or "timed out" in line]
    assert [line.split(":")[0] for line in flagged] == [mallory.name], listed.output
    assert "QUARANTINED" in flagged[0] and f"students pardon {mallory.name}" in flagged[0]

    # Within the stated bound of the honest run's time.
    assert attacked_seconds <= honest_seconds + BOUND_SECONDS, (
        f"attacked {attacked_seconds:.1f} s, honest {honest_seconds:.1f} s"
    )
