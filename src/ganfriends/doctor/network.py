"""The way to the database: its URL taken apart, the certificate its server presents, a login
whose refusal is explained, and the time of one round trip.

The URL holds a password: nothing here ever prints it or an error message that quotes it.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import re
import socket
import ssl
import statistics
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ganfriends.errors import GanError

APPLICATION = "ganfriends doctor"  # the sessions' application_name, as the server lists them
DEFAULT_PORT = 5432
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PLAINTEXT_MODES = ("disable", "allow", "prefer")  # may end up unencrypted
VERIFYING_MODES = ("verify-ca", "verify-full")
CONNECT_TIMEOUT = 10  # seconds, as the worker's own connections (db.connection)
# PostgreSQL's SSLRequest: length 8, code 1234.5679. The server answers one byte, S or N, before
# anything else, so the certificate can be read without logging in.
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_QUOTED = re.compile(r'"[^"]*"')


class BadInput(GanError):
    """The doctor was given something it cannot use (a broken URL, a malformed fingerprint)."""

    exit_status = 2  # bad input, as argparse's errors and a refused login

    def __init__(self, message: str, *, check: str = "url") -> None:
        super().__init__(message)
        self.check = check  # the check whose line says it


@dataclass(frozen=True)
class Target:
    """A database URL taken apart (its password stays in ``url``, which is never printed)."""

    url: str = field(repr=False)
    user: str
    host: str  # the first host; "" for libpq's default unix socket
    port: int
    database: str
    sslmode: str
    sslrootcert: str | None

    @property
    def socket(self) -> bool:
        """A unix socket: this machine, no network and no TLS."""
        return self.host == "" or self.host.startswith("/")

    @property
    def loopback(self) -> bool:
        """This machine, over TCP (or its socket): the traffic never leaves it."""
        if self.socket or self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def where(self) -> str:
        """``host:port``, or the socket it names."""
        if self.socket:
            return f"the unix socket in {self.host or 'the default folder'} (port {self.port})"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe(self) -> str:
        """Who connects where, e.g. ``alice at db.example.org:5432, database ganfriends
        (sslmode=require)``."""
        return f"{self.user} at {self.where}, database {self.database} (sslmode={self.sslmode})"


def _masked(message: str) -> str:
    # libpq quotes the part of the URL it could not read, which may be the password.
    return _QUOTED.sub('"..."', " ".join(message.split()))


def parse_url(url: str) -> Target:
    """``url`` taken apart, or :class:`BadInput` with one line that never quotes the URL."""
    try:
        params = conninfo_to_dict(url.strip())
    except psycopg.ProgrammingError as exc:
        raise BadInput(
            f"the database URL cannot be read ({_masked(str(exc))}): copy it again, whole, from "
            "the instructor (postgresql://NAME:PASSWORD@HOST:PORT/DATABASE?sslmode=require)"
        ) from None
    first = str(params.get("host") or "").split(",")[0]
    port_text = str(params.get("port") or DEFAULT_PORT).split(",")[0]
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise BadInput("the database URL's port is not a number from 1 to 65535: copy it again")
    mode = str(params.get("sslmode") or "prefer")  # libpq's default
    if mode not in SSL_MODES:
        raise BadInput(f"the database URL's sslmode must be one of {', '.join(SSL_MODES)}")
    user = str(params.get("user") or getpass.getuser())
    return Target(
        url=url.strip(),
        user=user,
        host=first,
        port=int(port_text),
        database=str(params.get("dbname") or user),
        sslmode=mode,
        sslrootcert=str(params["sslrootcert"]) if params.get("sslrootcert") else None,
    )


def normalise_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as ``db start`` prints it (``AB:CD:...``), from any spelling."""
    digits = re.sub(r"[\s:]", "", text.upper().removeprefix("SHA256:").removeprefix("SHA-256:"))
    if not re.fullmatch(r"[0-9A-F]{64}", digits):
        raise BadInput(
            "--fingerprint takes the certificate's SHA-256 fingerprint, 64 hexadecimal digits "
            "(as `ganfriends db start` prints it, with or without colons)",
            check="tls",
        )
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def fingerprint_of(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate, colon-separated upper-case hex."""
    return normalise_fingerprint(certificate.fingerprint(hashes.SHA256()).hex())


@dataclass(frozen=True)
class Served:
    """What the server at an address answered to a TLS request."""

    tls: bool
    protocol: str | None = None  # e.g. TLSv1.3
    certificate: x509.Certificate | None = None

    @property
    def fingerprint(self) -> str | None:
        """The SHA-256 fingerprint of the certificate it presented."""
        return None if self.certificate is None else fingerprint_of(self.certificate)


class NotPostgres(GanError):
    """The address answered, but not as a PostgreSQL server."""


def probe_tls(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> Served:
    """Ask the server at ``host:port`` for TLS, as libpq does first, and read the certificate it
    presents (not verified: this is what gets compared). Raises ``OSError`` when unreachable."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        raw.sendall(SSL_REQUEST)
        answer = raw.recv(1)
        if answer == b"N":
            return Served(tls=False)
        if answer != b"S":
            raise NotPostgres(f"{host}:{port} answered {answer!r}, not as a PostgreSQL server")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            ipaddress.ip_address(host)
            name = None  # no SNI for an address
        except ValueError:
            name = host
        with context.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
            protocol = tls.version()
    certificate = x509.load_der_x509_certificate(der) if der else None
    return Served(tls=True, protocol=protocol, certificate=certificate)


def expiry_problem(certificate: x509.Certificate, *, within_days: int = 14) -> str | None:
    """A line when the certificate has expired or expires within ``within_days``, else None."""
    ends = certificate.not_valid_after_utc
    left = ends - datetime.datetime.now(datetime.timezone.utc)
    if left.total_seconds() <= 0:
        return f"the server's certificate expired on {ends:%Y-%m-%d}"
    if left.days < within_days:
        return f"the server's certificate expires on {ends:%Y-%m-%d}, in {left.days} day(s)"
    return None


def pinned_fingerprints(path: str) -> list[str]:
    """The fingerprints of the certificates in a PEM file (an ``sslrootcert``)."""
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).expanduser().read_bytes())
    except (OSError, ValueError) as exc:
        raise GanError(f"cannot read the certificate file {path} ({exc})") from exc
    return [fingerprint_of(c) for c in certificates]


def connect(target: Target) -> psycopg.Connection[Any]:
    """A direct connection to ``target`` (autocommit). Raises ``psycopg.OperationalError``:
    :func:`login_advice` says what its message means."""
    conninfo = make_conninfo(
        target.url, application_name=APPLICATION, connect_timeout=CONNECT_TIMEOUT
    )
    return psycopg.connect(conninfo, autocommit=True)


# A refused login, by the text libpq or the server gives (English servers; else the message).
_LOGIN_ADVICE = (
    ("is not permitted to log in", "{user} may no longer log in (revoked by the instructor?): "
     "ask the instructor for a new URL"),
    ("password authentication failed", "the server refused {user}'s password: copy your URL "
     "again from the instructor (each student has their own)"),
    ("no password supplied", "your URL holds no password for {user}: copy it again, whole, "
     "from the instructor"),
    ("too many connections for role", "all of {user}'s connections are in use (a worker, or "
     "several, already running?): stop one, or ask the instructor for more "
     "(`students add --max-connections`)"),
    ("root certificate file", "the certificate file your URL names (sslrootcert) cannot be "
     "read: see the tls line"),
    ("does not exist", "{detail}: check the name and database in your URL against the one the "
     "instructor gave you"),
    ("no pg_hba.conf entry", "the server does not accept {user} from this address ({detail}): "
     "ask the instructor"),
    ("does not support SSL", "the server offers no TLS and your URL requires it: see the tls line"),
    ("certificate", "the server's certificate is not the one your URL trusts ({detail}): do not "
     "connect; tell the instructor"),
    ("Connection refused", "nothing answers at {where}: is the instructor's database running and "
     "listening on the network (`ganfriends db start --listen 0.0.0.0`)? Check the address"),
    ("timeout expired", "no answer from {where} within {timeout} s: check the address, your "
     "network, and that no firewall blocks port {port}"),
    ("could not translate host name", "the name {host} does not resolve: check the address in "
     "your URL"),
)  # fmt: skip


def login_advice(exc: psycopg.Error, target: Target) -> str:
    """What a refused or failed connection means, in one line that names no password."""
    message = " ".join(str(exc).split())
    detail = message[message.find("FATAL:") + 7 :] if "FATAL:" in message else message
    detail = detail.replace(target.url, "<url>")
    for text, advice in _LOGIN_ADVICE:
        if text in message:
            return advice.format(
                user=target.user, where=target.where, host=target.host, port=target.port,
                timeout=CONNECT_TIMEOUT, detail=detail,
            )  # fmt: skip
    return f"cannot connect to {target.where}: {detail}"


def round_trip(conn: psycopg.Connection[Any], query: str, *, times: int = 5) -> float:
    """The median seconds of ``times`` runs of ``query`` on ``conn`` (one round trip each), after
    one unmeasured run (the server's first parse and plan of it)."""
    conn.execute(query, {}).fetchall()
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        conn.execute(query, {}).fetchall()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)
