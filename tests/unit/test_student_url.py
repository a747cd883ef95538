"""A student's URL on any server: ``postgresql://NAME:PASSWORD@HOST:PORT/DB?sslmode=MODE``, with
the TLS mode of the instructor's URL, every part percent-encoded so that libpq reads it back."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from ganfriends.db.students import format_student_url, student_tls


def test_the_url_form_with_its_parts_encoded() -> None:
    url = format_student_url(
        "alice", "p@ss:/?#%", host="db.example.org", port=5432, database="my class",
        sslmode="require",
    )  # fmt: skip
    assert (
        url
        == "postgresql://alice:p%40ss%3A%2F%3F%23%25@db.example.org:5432/my%20class?sslmode=require"
    )
    assert conninfo_to_dict(url) == {
        "user": "alice", "password": "p@ss:/?#%", "host": "db.example.org", "port": "5432",
        "dbname": "my class", "sslmode": "require",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("host", "netloc"),
    [("::1", "[::1]:5433"), ("/var/run/postgresql", "%2Fvar%2Frun%2Fpostgresql:5433")],
)
def test_an_ipv6_address_or_a_socket_directory_as_host(host: str, netloc: str) -> None:
    url = format_student_url("bob", "pw", host=host, port="5433", database="c", sslmode="prefer")
    assert url == f"postgresql://bob:pw@{netloc}/c?sslmode=prefer"
    assert conninfo_to_dict(url)["host"] == host


@pytest.mark.parametrize(
    ("instructor_url", "tls_in_use", "expected"),
    [
        # A mode that checks something is kept as the instructor wrote it.
        ("postgresql://i:x@h/c?sslmode=require", True, ("require", None)),
        ("host=h dbname=c user=i sslmode=verify-full sslrootcert=system", True,
         ("verify-full", "system")),
        # A certificate file: its bare name, the copy students keep beside them.
        ("postgresql://i@h/c?sslmode=verify-ca&sslrootcert=/home/prof/tls/server.crt", True,
         ("verify-ca", "server.crt")),
        # Nothing said, or a mode that allows plaintext: require when the server speaks TLS...
        ("postgresql://i:x@h/c", True, ("require", None)),
        ("postgresql://i:x@h/c?sslmode=prefer", True, ("require", None)),
        # ...else as it was (libpq's default, prefer, said out loud).
        ("postgresql://i:x@h/c", False, ("prefer", None)),
        ("postgresql://i:x@h/c?sslmode=disable", False, ("disable", None)),
    ],
)  # fmt: skip
def test_the_tls_mode_follows_the_instructors_url(
    instructor_url: str, tls_in_use: bool, expected: tuple[str, str | None]
) -> None:
    assert student_tls(instructor_url, tls_in_use=tls_in_use) == expected


def test_a_root_certificate_goes_into_the_query() -> None:
    url = format_student_url(
        "carol", "pw", host="h", port=None, database="c", sslmode="verify-full",
        sslrootcert="server.crt",
    )  # fmt: skip
    assert url == "postgresql://carol:pw@h/c?sslmode=verify-full&sslrootcert=server.crt"
