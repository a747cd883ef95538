"""The TLS certificate of a server that listens on the network.

The embedded server serves TLS whenever it listens on TCP: students' passwords are protected by
SCRAM, but without TLS the weights, the uploads and the lease tokens cross the network in the
clear, and anyone on the same Wi-Fi could take over a session. An instructor either brings a
certificate (``--tls-cert``/``--tls-key``, e.g. one for the machine's DNS name) or gets a
self-signed one generated here, for the address the class connects to.

Students' URLs say ``sslmode=require``: encrypted, and a server without TLS is refused. Against
an active attacker a student adds ``sslrootcert`` (the certificate file, or ``system`` for one
signed by a public CA) and ``sslmode=verify-full``; the SHA-256 fingerprint printed by ``db start``
lets anyone check the certificate they were given.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ganfriends.db.errors import DatabaseError

CERT_FILE = "server.crt"
KEY_FILE = "server.key"
GENERATED_MARK = "generated"  # present when we made the certificate (and may remake it)
VALID_DAYS = 825  # the longest validity clients such as Apple's accept for a server certificate
COMMON_NAME = "ganfriends class database"
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Certificate:
    """A server certificate installed in a cluster's ``tls/`` directory."""

    cert_file: Path
    key_file: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex
    self_signed: bool
    names: tuple[str, ...]  # its subject alternative names (DNS names and IP addresses)


def install(
    tls_dir: Path, hosts: list[str], *, cert: Path | None = None, key: Path | None = None
) -> Certificate:
    """The certificate in ``tls_dir``: ``cert``/``key`` copied in when given, else the one there,
    else (or when a generated one does not name every host in ``hosts``) a new self-signed one."""
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    cert_file, key_file, mark = tls_dir / CERT_FILE, tls_dir / KEY_FILE, tls_dir / GENERATED_MARK
    if (cert is None) != (key is None):
        raise DatabaseError("--tls-cert and --tls-key go together")
    if cert is not None and key is not None:
        _check_pair(cert, key)
        _copy_private(cert, cert_file)
        _copy_private(key, key_file)
        mark.unlink(missing_ok=True)
    elif not cert_file.exists() or (mark.exists() and not _names_all(cert_file, hosts)):
        _generate(cert_file, key_file, hosts)
        mark.touch(mode=0o600)
    return describe(cert_file, key_file, self_signed=mark.exists())


def describe(cert_file: Path, key_file: Path, *, self_signed: bool) -> Certificate:
    """What a client needs to know about the installed certificate."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise DatabaseError(f"cannot read the TLS certificate {cert_file}: {exc}") from exc
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return Certificate(
        cert_file=cert_file,
        key_file=key_file,
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        self_signed=self_signed,
        names=tuple(_names(certificate)),
    )


def _names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(extension.value.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in extension.value.get_values_for_type(x509.IPAddress)]
    return names


def _names_all(cert_file: Path, hosts: list[str]) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return False
    names = set(_names(certificate))
    return all(_canonical(host) in names for host in hosts)


def _canonical(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _generate(cert_file: Path, key_file: Path, hosts: list[str]) -> None:
    # P-256: every libpq/OpenSSL in use accepts it, and it signs far faster than RSA-2048.
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = []
    for host in dict.fromkeys(_canonical(h) for h in [*hosts, "localhost", "127.0.0.1", "::1"]):
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alternatives.append(x509.DNSName(host))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of students' laptops
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        # Its own root: a student who wants verify-full passes this file as sslrootcert, and
        # OpenSSL accepts a trust anchor only if it may sign certificates.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_private(cert_file, certificate.public_bytes(serialization.Encoding.PEM))


def _check_pair(cert: Path, key: Path) -> None:
    # Refused here with one line rather than by the server at start, with its log to read.
    try:
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise DatabaseError(f"cannot use {cert} and {key} as TLS files: {exc}") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != private.public_key().public_bytes(serialization.Encoding.DER, public):
        raise DatabaseError(f"the key {key} does not belong to the certificate {cert}")


def _copy_private(source: Path, target: Path) -> None:
    _write_private(target, source.read_bytes())


def _write_private(path: Path, data: bytes) -> None:
    # PostgreSQL refuses a key readable by others; 0600 from creation, never an instant wider.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
