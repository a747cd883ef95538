"""A class at once, on a real PostgreSQL: a roster's students are created together or not at all,
a second run skips them (even one running at the same time), and revoke --all ends the class."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ganfriends.classroom.roster import UrlOutputs
from ganfriends.db.roster import RosterResult, add_roster, parse_roster, revoke_all
from ganfriends.db.students import StudentError, list_students, reissue_student
from tests.integration.queue_helpers import Raw
from tests.waiting import wait_until

_batches = itertools.count()


def names(count: int) -> list[str]:
    """Role names no other test uses (roles belong to the whole server)."""
    batch = next(_batches)
    return [f"r{os.getpid()}_{batch}_{i}" for i in range(count)]


def roles_named(raw: Raw, wanted: list[str]) -> list[str]:
    rows = raw.rows("SELECT rolname FROM pg_roles WHERE rolname = ANY(%(n)s)", n=wanted)
    return sorted(row["rolname"] for row in rows)


def logins(class_admin: str, wanted: list[str]) -> dict[str, tuple[bool, str]]:
    """Per role: whether it may log in, and its password's verifier (the tests reach the
    server over its socket, where it asks for no password: what it would check is read)."""
    with psycopg.connect(class_admin) as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
            (wanted,),
        ).fetchall()
    return {str(name): (bool(login), str(verifier)) for name, login, verifier in rows}


# ------------------------------------------------------------------ the roster file


def test_a_roster_reads_names_and_a_csv_its_name_column() -> None:
    plain = "# class of 2026\nalice\n\n  bob  \n"
    table = "\ufeffEmail,Name\nc@x.org,carol\n# late\nd@x.org,dave\n"
    assert parse_roster(plain) == ["alice", "bob"]
    assert parse_roster(table.lstrip("\ufeff")) == ["carol", "dave"]


def test_every_problem_of_a_roster_is_reported_at_once() -> None:
    with pytest.raises(StudentError) as refused:
        parse_roster("alice\nBob Smith\nalice\n1x\n", source="class.txt")
    lines = str(refused.value).splitlines()
    assert lines[0] == "class.txt: nothing created; 3 problem(s):"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["line 2", "line 3", "line 4"]


# ------------------------------------------------------------------ adding a class


def test_a_roster_creates_its_students_and_a_rerun_skips_them(class_admin: str) -> None:
    first, late = names(3), names(1)
    before = add_roster(class_admin, first, max_connections=5)
    created = logins(class_admin, first)
    again = add_roster(class_admin, first + late, max_connections=5)

    assert list(before.created) == first and before.existing == []
    assert list(again.created) == late and again.existing == first
    assert logins(class_admin, first) == created  # their passwords were left as they were
    assert {s.name for s in list_students(class_admin)} == set(first + late)


def test_a_failure_before_the_commit_creates_no_student(
    db_url: str, class_admin: str, raw: Raw
) -> None:
    roster = names(3)

    def crash(created: Mapping[str, str]) -> None:
        assert list(created) == roster  # everything was ready to be committed
        raise OSError("disk full")

    with pytest.raises(OSError):
        add_roster(class_admin, roster, max_connections=5, keep=crash)

    assert roles_named(raw, roster) == []


def test_a_name_taken_by_another_role_stops_the_whole_roster(
    db_url: str, class_admin: str, raw: Raw
) -> None:
    owner = raw.scalar("SELECT current_user")
    roster = names(2)

    with pytest.raises(StudentError, match=f"not students of this class: {owner}"):
        add_roster(class_admin, [*roster, owner], max_connections=5)

    assert roles_named(raw, roster) == []


def test_two_runs_at_once_create_each_student_once(class_admin: str, raw: Raw) -> None:
    roster = names(4)
    results: dict[str, RosterResult] = {}
    errors: list[BaseException] = []

    def hold_until_the_other_waits(created: Mapping[str, str]) -> None:
        # The first run, its students not yet committed, waits for the second to queue behind it.
        if created:
            raw.wait_for_lock_waiters(1, "the second roster run waiting for the first")

    def run(key: str) -> None:
        try:
            results[key] = add_roster(
                class_admin, roster, max_connections=5, keep=hold_until_the_other_waits
            )
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(key,)) for key in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    created = sorted(len(result.created) for result in results.values())
    assert created == [0, 4]  # one run created them all, the other found them there
    assert roles_named(raw, roster) == sorted(roster)


# ------------------------------------------------------------------ ending a class


def test_revoke_all_ends_every_students_sessions_and_login(db_url: str, class_admin: str) -> None:
    roster = names(2)
    passwords = add_roster(class_admin, roster, max_connections=5).created
    session = psycopg.connect(make_conninfo(db_url, user=roster[0], password=passwords[roster[0]]))

    revoked = revoke_all(class_admin)

    assert sorted(r.name for r in revoked) == sorted(roster)
    assert all(r.problem is None for r in revoked)
    wait_until(lambda: _dead(session), "the student's session to end")
    assert not any(login for login, _ in logins(class_admin, roster).values())


def test_a_reissued_url_lets_a_revoked_student_back_in(class_admin: str) -> None:
    [name] = names(1)
    add_roster(class_admin, [name], max_connections=5)
    revoke_all(class_admin)
    [(_, before)] = logins(class_admin, [name]).values()

    reissue_student(class_admin, name)

    [(login, after)] = logins(class_admin, [name]).values()
    assert login and after != before


def _dead(session: psycopg.Connection[Any]) -> bool:
    try:
        session.execute("SELECT 1")
        return False
    except psycopg.OperationalError:
        return True


def test_the_urls_folder_and_files_are_private(tmp_path: Path) -> None:
    def outputs() -> UrlOutputs:
        return UrlOutputs(folder=tmp_path / "urls", table=tmp_path / "urls.csv")

    outputs().write({"alice": "postgresql://alice:pw@h/db"})
    later = outputs()
    later.write({"bob": "postgresql://bob:pw@h/db"})  # a later run: appended

    assert (tmp_path / "urls").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "urls" / "alice.txt").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "urls.csv").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "urls.csv").read_text().splitlines() == [
        "name,url", "alice,postgresql://alice:pw@h/db", "bob,postgresql://bob:pw@h/db",
    ]  # fmt: skip
    later.undo()  # the later run's commit failed: what it wrote goes, the first run's stays
    assert sorted(p.name for p in (tmp_path / "urls").iterdir()) == ["alice.txt"]
    assert (tmp_path / "urls.csv").read_text().splitlines()[-1].startswith("alice,")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["add", "alice", "--roster", "class.txt"], "--roster FILE goes with `students add` and"),
        (["add", "alice", "--urls-dir", "urls"], "--urls-dir and --urls-csv go with"),
        (["revoke", "alice", "--all"], "--all goes with `students revoke` and no NAME"),
        (["revoke", "--yes"], "--yes goes with `students revoke --all`"),
        (["add", "--roster", "class.txt", "--output", "x"], "--output goes with"),
    ],
)
def test_student_flags_that_mean_nothing_together_are_one_line(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ganfriends.cli import main

    assert main(["students", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said}") and err.count("\n") == 1
