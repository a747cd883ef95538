"""The embedded server on the network serves TLS only, unless plaintext is asked for by name."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ganfriends.db import EmbeddedPostgres
from ganfriends.db._pgctl import free_port
from ganfriends.db.errors import DatabaseError


@pytest.fixture
def servers() -> Iterator[list[EmbeddedPostgres]]:
    started: list[EmbeddedPostgres] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def _session_tls(url: str) -> tuple[bool, str | None]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return bool(row[0]), row[1]


def _start(servers: list[EmbeddedPostgres], pg_dir: Path, **options: object) -> EmbeddedPostgres:
    # ``options`` are EmbeddedPostgres's keywords, each test giving its own values.
    server = EmbeddedPostgres(pg_dir, durable=False, **options)  # type: ignore[arg-type]
    servers.append(server)
    return server


def _own_certificate(directory: Path, name: str = "class.example.org") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "own.crt", directory / "own.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_listening_serves_tls_and_refuses_plaintext(
    pg_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    info = _start(servers, pg_dir, listen="127.0.0.1", port=free_port()).start()
    assert info.tls is not None and info.tls.self_signed
    assert info.url().endswith("?sslmode=require")
    encrypted, version = _session_tls(info.url())
    assert encrypted and version in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        _session_tls(info.url().replace("sslmode=require", "sslmode=disable"))


def test_the_generated_certificate_verifies_the_server_by_name(
    pg_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    info = _start(servers, pg_dir, listen="127.0.0.1", port=free_port()).start()
    assert info.tls is not None and "127.0.0.1" in info.tls.names
    # A student given the certificate file checks they reach this server, not an impostor.
    strict = f"sslmode=verify-full&sslrootcert={info.tls.cert_file}"
    assert _session_tls(info.url().replace("sslmode=require", strict))[0]
    key_mode = info.tls.key_file.stat().st_mode & 0o777
    assert key_mode == 0o600


def test_a_restart_keeps_tls_and_its_certificate(
    pg_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    first = _start(servers, pg_dir, listen="127.0.0.1", port=free_port())
    before = first.start()
    first.stop()
    again = _start(servers, pg_dir).start()  # any instructor command: no --listen
    assert again.tls is not None and before.tls is not None
    assert again.tls.fingerprint == before.tls.fingerprint
    assert again.url() == before.url()
    assert _session_tls(again.url())[0]


def test_a_generated_certificate_follows_a_new_listen_address(
    pg_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    first = _start(servers, pg_dir, listen="127.0.0.1", port=free_port())
    before = first.start()
    first.stop()
    moved = _start(servers, pg_dir, listen="127.0.0.2", port=free_port()).start()
    assert moved.tls is not None and before.tls is not None
    assert "127.0.0.2" in moved.tls.names
    assert moved.tls.fingerprint != before.tls.fingerprint


def test_an_instructors_certificate_is_served(
    pg_dir: Path, servers: list[EmbeddedPostgres], tmp_path: Path
) -> None:
    cert, key = _own_certificate(tmp_path)
    server = _start(
        servers, pg_dir, listen="127.0.0.1", port=free_port(), tls_cert=cert, tls_key=key
    )
    info = server.start()
    given = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA256())
    assert info.tls is not None and not info.tls.self_signed
    assert info.tls.fingerprint.replace(":", "") == given.hex().upper()
    assert info.tls.names == ("class.example.org",)
    assert _session_tls(info.url())[0]


def test_a_key_that_does_not_match_the_certificate_is_refused(
    pg_dir: Path, servers: list[EmbeddedPostgres], tmp_path: Path
) -> None:
    cert, _ = _own_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = _own_certificate(tmp_path / "other")
    server = _start(
        servers, pg_dir, listen="127.0.0.1", port=free_port(), tls_cert=cert, tls_key=other_key
    )
    with pytest.raises(DatabaseError, match="does not belong to the certificate"):
        server.start()


def test_plaintext_only_when_asked_and_remembered(
    pg_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    first = _start(servers, pg_dir, listen="127.0.0.1", port=free_port(), plaintext=True)
    info = first.start()
    assert info.tls is None and "sslmode" not in info.url()
    assert not _session_tls(info.url())[0]
    first.stop()
    again = _start(servers, pg_dir).start()
    assert again.tls is None
    first.stop()
    # Asking for the network again without the flag brings TLS back.
    secure = _start(servers, pg_dir, listen="127.0.0.1", port=info.port).start()
    assert secure.tls is not None
    assert _session_tls(secure.url())[0]


def test_a_running_server_is_not_silently_switched_to_plaintext(
    pg_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    port = free_port()
    _start(servers, pg_dir, listen="127.0.0.1", port=port).start()
    with pytest.raises(DatabaseError, match=r"\(TLS\); stop it first"):
        _start(servers, pg_dir, listen="127.0.0.1", port=port, plaintext=True).start()
