"""The doctor's reading of a database URL and a certificate fingerprint: what it finds, and one
line that never quotes the password when it cannot."""

from __future__ import annotations

import pytest

from ganfriends.cli import main
from ganfriends.doctor.checks import Report, Result, fail, ok
from ganfriends.doctor.network import BadInput, normalise_fingerprint, parse_url

STUDENT_URL = "postgresql://alice:s3cr%2Ft@class.example.org:6543/ganfriends?sslmode=require"


def test_a_students_url_is_taken_apart() -> None:
    target = parse_url(STUDENT_URL)

    assert (target.user, target.host, target.port, target.database, target.sslmode) == (
        "alice", "class.example.org", 6543, "ganfriends", "require",
    )  # fmt: skip
    assert not target.socket and not target.loopback


def test_the_described_target_names_no_password() -> None:
    target = parse_url(STUDENT_URL)

    assert "s3cr" not in target.describe() and "s3cr" not in repr(target)


def test_a_url_without_sslmode_gets_libpqs_default() -> None:
    assert parse_url("postgresql://bob:pw@10.0.0.5/ganfriends").sslmode == "prefer"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:my secret@host/db",  # a space libpq will not take
        "postgresql://alice:my%zzsecret@host/db",  # a broken percent-encoding
        "alice:mysecret@host",  # no scheme
        "postgresql://alice:mysecret@[::1/db",  # an unclosed IPv6 address
    ],
)
def test_a_broken_url_is_one_line_without_its_password(url: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_url(url)

    assert "secret" not in str(caught.value)
    assert caught.value.exit_status == 2


def test_the_command_says_a_broken_url_in_one_line_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["doctor", "postgresql://alice:my secret@host/db"])

    out = capsys.readouterr().out
    assert status == 2
    assert out.startswith("FAIL url: the database URL cannot be read (")
    assert len(out.splitlines()) == 1 and "secret" not in out


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(BadInput, match="port"):
        parse_url("postgresql://alice:pw@host:99999/db")


def test_an_unknown_sslmode_is_refused() -> None:
    with pytest.raises(BadInput, match="sslmode must be one of"):
        parse_url("postgresql://alice:pw@host/db?sslmode=maybe")


@pytest.mark.parametrize(
    ("url", "socket", "loopback"),
    [
        ("postgresql://me@/ganfriends?host=%2Ftmp%2Fpg", True, True),
        ("postgresql://me:pw@127.0.0.1:5432/ganfriends", False, True),
        ("postgresql://me:pw@localhost/ganfriends", False, True),
        ("postgresql://me:pw@192.168.1.20/ganfriends", False, False),
    ],
)
def test_where_the_server_is(url: str, socket: bool, loopback: bool) -> None:
    target = parse_url(url)

    assert (target.socket, target.loopback) == (socket, loopback)


def test_a_fingerprint_is_read_in_any_spelling() -> None:
    given = "sha256:" + "ab" * 32

    assert normalise_fingerprint(given) == ":".join(["AB"] * 32)


def test_a_short_fingerprint_is_refused_on_the_tls_line() -> None:
    with pytest.raises(BadInput) as caught:
        normalise_fingerprint("AB:CD")

    assert caught.value.check == "tls"


def test_a_line_is_its_status_its_check_and_what_was_found() -> None:
    assert ok("latency", "round trip 80 ms").line() == "ok   latency: round trip 80 ms"
    assert fail("run", "no run").line() == "FAIL run: no run"


def test_one_failed_check_makes_the_exit_status_one() -> None:
    shown: list[Result] = []
    report = Report(shown.append)
    report.add(ok("url", "fine"))
    report.add(fail("tls", "no TLS"))

    assert (report.exit_status, len(shown)) == (1, 2)
