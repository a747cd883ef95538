"""A student's role, on a real PostgreSQL: everything a worker needs works, nothing else does.

Each statement of the matrix is what a hostile student tried with the owner's URL (the issue's
"Why"), now run with a student's own login: every one must fail with a privilege error.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ganfriends.classroom import queue
from ganfriends.compat import WORKER_VERSION
from ganfriends.db import Database
from ganfriends.db.students import add_student, list_students, revoke_student
from tests.integration.queue_helpers import Raw, claim, new_run, register, submit
from tests.integration.student_helpers import HARDWARE, Student, new_student

# ------------------------------------------------------------------ what a worker needs


def test_a_student_does_everything_a_worker_does(db: Database, raw: Raw, student: Student) -> None:
    run_id = new_run(db, units_per_update=2)
    with Database(student.url, max_size=2) as mine:
        run = queue.latest_running_run(mine)
        assert run is not None and run.id == run_id
        queue.check_version(mine, run_id)
        worker = queue.register_worker(mine, run_id, "alice", "laptop", HARDWARE)
        [lease] = queue.claim(mine, run_id, worker)
        with mine.transaction() as tx:
            tx.execute("heartbeat", worker_id=worker)
            tx.execute("extend_leases", worker_id=worker)
        assert queue.weights(mine, run_id, 0) is not None
        assert queue.run_state(mine, run_id) == "running"
        upload = queue.Outgoing(lease, images=64, payload=b"blob", device_state=None,
                                compute_seconds=1.0)  # fmt: skip
        assert queue.submit(mine, run_id, worker, [upload]) == {lease.unit_id}
        # Credited at once on the leaderboard the student reads, as pending until combined.
        (line,) = mine.fetch_all("leaderboard", run_id=run_id)
        assert (line["name"], line["units"], line["pending"], line["images"]) == (
            "alice", 1, 1, 64,
        )  # fmt: skip
        [second] = queue.claim(mine, run_id, worker)
        queue.release(mine, worker, [second])
        mine.execute("worker_stopped", worker_id=worker)
    row = raw.one("SELECT name, role_name FROM workers")
    assert row == {"name": "alice", "role_name": student.name}
    assert raw.count("results") == 1


# ------------------------------------------------------------------ what it must not do


def forbidden(db_url: str, owner_worker: int, token: str) -> dict[str, str]:
    database = conninfo_to_dict(db_url)["dbname"]
    return {
        "drop the database": f'DROP DATABASE "{database}"',
        "drop the schema": "DROP SCHEMA ganfriends CASCADE",
        "drop a table": "DROP TABLE ganfriends.runs",
        "truncate runs": "TRUNCATE ganfriends.runs CASCADE",
        "delete runs": "DELETE FROM ganfriends.runs",
        "stop the run": "UPDATE ganfriends.runs SET state = 'stopped'",
        "inflate the leaderboard": "UPDATE ganfriends.workers SET images_done = 32000000",
        "read lease tokens": "SELECT token FROM ganfriends.leases",
        "read other uploads": "SELECT payload FROM ganfriends.results",
        "read optimizer states": "SELECT * FROM ganfriends.optimizer_states",
        "overwrite weights": "UPDATE ganfriends.weights SET generator = ''::bytea",
        "insert weights": "INSERT INTO ganfriends.weights (run_id, version) VALUES (1, 99)",
        "mark units done": "UPDATE ganfriends.work_units SET state = 'done'",
        "forge a lease": "INSERT INTO ganfriends.leases (unit_id, worker_id, expires_at) "
        "VALUES (1, 1, now())",
        "forge a result": "INSERT INTO ganfriends.results (unit_id) VALUES (1)",
        "delete rejections": "DELETE FROM ganfriends.rejections",
        "create a table in the schema": "CREATE TABLE ganfriends.mine (x int)",
        "create a table in public": "CREATE TABLE public.mine (x int)",
        "create a temporary table": "CREATE TEMP TABLE mine (x int)",
        "create a function": "CREATE FUNCTION ganfriends.f() RETURNS int LANGUAGE sql "
        "AS 'SELECT 1'",
        "alter a table": "ALTER TABLE ganfriends.runs ADD COLUMN x int",
        "change database settings": f"ALTER DATABASE \"{database}\" SET statement_timeout = '1ms'",
        "become the owner": "SET ROLE ganfriends",
        "change session authorization": "SET SESSION AUTHORIZATION ganfriends",
        "create a role": "CREATE ROLE intruder LOGIN",
        "raise its own connection limit": "ALTER ROLE CURRENT_USER CONNECTION LIMIT -1",
        "grant itself lease tokens": "GRANT SELECT ON ganfriends.leases TO PUBLIC",
        "terminate the owner's sessions": "SELECT pg_terminate_backend(pid) FROM "
        "pg_stat_activity WHERE usename <> current_user",
        "heartbeat another's worker": f"SELECT ganfriends.worker_heartbeat({owner_worker})",
        "stop another's worker": f"SELECT ganfriends.worker_stop({owner_worker})",
        "release another's lease": f"SELECT ganfriends.worker_release_lease('{token}', "
        f"{owner_worker})",
        "upload with another's lease": "SELECT * FROM ganfriends.worker_submit_result(1, "
        f"{owner_worker}, '{token}', 64, 'x'::bytea, NULL, 1)",
        "read files on the server": "SELECT pg_read_file('/etc/passwd')",
        "run a program on the server": "COPY ganfriends.runs FROM PROGRAM 'id'",
    }


FORBIDDEN_NAMES = list(forbidden("dbname=x", 1, "00000000-0000-0000-0000-000000000000"))


@pytest.mark.parametrize("what", FORBIDDEN_NAMES)
def test_a_student_cannot(what: str, db_url: str, db: Database, raw: Raw, student: Student) -> None:
    run_id = new_run(db, units_per_update=2)
    owner_worker = register(db, run_id, "instructor-worker")
    lease = claim(db, run_id, owner_worker)
    assert lease is not None
    statement = forbidden(db_url, owner_worker, str(lease["token"]))[what]
    with (
        psycopg.connect(student.url, autocommit=True) as conn,
        pytest.raises(psycopg.Error) as caught,
    ):
        conn.execute(statement)
    assert caught.value.sqlstate in ("42501", "0LP01"), caught.value  # privilege errors
    assert raw.one("SELECT state FROM runs")["state"] == "running"
    assert raw.one("SELECT images_done FROM workers")["images_done"] == 0


def test_the_matrix_holds_at_least_25_statements() -> None:
    assert len(FORBIDDEN_NAMES) >= 25


# ------------------------------------------------------------------ limits and revocation


def test_a_student_cannot_open_more_connections_than_granted(db_url: str, class_admin: str) -> None:
    limited = new_student(db_url, class_admin, max_connections=1)
    with psycopg.connect(limited.url), pytest.raises(psycopg.OperationalError, match="too many"):
        psycopg.connect(limited.url)


def test_a_revoked_student_is_cut_off_and_their_unit_given_back(
    db: Database, raw: Raw, student: Student
) -> None:
    run_id = new_run(db, units_per_update=2)
    session = psycopg.connect(student.url, autocommit=True)  # closed by the revocation
    registered = session.execute(
        "SELECT ganfriends.worker_register(%s, 'mallory', 'h', 'cpu', NULL, NULL, NULL, NULL, %s)",
        (run_id, WORKER_VERSION),
    ).fetchone()
    assert registered is not None
    claimed = session.execute(
        "SELECT unit_id FROM ganfriends.worker_claim_unit(%s, %s)", (run_id, registered[0])
    ).fetchone()
    assert claimed is not None, "the student could claim no unit"
    unit = claimed[0]

    assert revoke_student(student.admin_url, student.name) == 1

    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # the open session was ended
    session.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(student.url)  # no new login
    assert raw.unit(unit)["state"] == "pending"  # claimable at once
    listed = {s.name: s for s in list_students(student.admin_url)}
    assert not listed[student.name].can_login and listed[student.name].workers == 1


def test_a_revoked_students_login_is_a_refusal_not_an_outage(student: Student) -> None:
    from ganfriends.db.connection import login_refusal

    revoke_student(student.admin_url, student.name)

    refusal = login_refusal(student.url)  # a worker stops on it instead of retrying
    assert refusal is not None and "is not permitted to log in" in str(refusal)


def test_student_names_that_are_not_plain_identifiers_are_refused(class_admin: str) -> None:
    from ganfriends.db.students import StudentError

    with pytest.raises(StudentError, match="invalid student name"):
        add_student(class_admin, 'x"; DROP ROLE postgres; --')


def test_submit_helper_still_refuses_a_foreign_lease_for_the_owner(db: Database) -> None:
    # The owner acts for all its workers, but a lease stays bound to the worker that holds it.
    run_id = new_run(db, units_per_update=2)
    a, b = register(db, run_id, "a"), register(db, run_id, "b")
    lease = claim(db, run_id, a)
    assert lease is not None
    assert submit(db, run_id, b, lease["token"], b"x") is None


def test_a_students_sessions_cannot_idle_in_a_transaction_or_vanish_for_long(
    student: Student,
) -> None:
    with psycopg.connect(student.url) as conn:
        idle = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        waits = conn.execute("SHOW lock_timeout").fetchone()
        role = conn.execute(
            "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = current_user"
        ).fetchone()
    assert idle == ("30s",) and waits == ("10s",)
    # Keepalives read 0 over a unix socket, where they do not apply: the role carries them.
    assert role is not None and "tcp_keepalives_idle=10" in role[0]
