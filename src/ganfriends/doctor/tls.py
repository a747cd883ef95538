"""The TLS checks: what a server presents at the address students connect to, against what each
side expects of it (the student: the fingerprint given or the ``sslrootcert`` of their URL; the
instructor: the certificate installed in the embedded server's ``tls/`` folder)."""

from __future__ import annotations

import ssl

from ganfriends.db import tls as installed
from ganfriends.doctor import network
from ganfriends.doctor.checks import Found, Result, fail, ok, skip, warn
from ganfriends.doctor.network import NotPostgres, Served, Target
from ganfriends.errors import GanError

RESTART_WITH_TLS = (
    "(`ganfriends db stop`, then `ganfriends db start --listen ADDRESS` without "
    "--insecure-plaintext)"
)


def check_tls(target: Target, pin: str | None) -> Result:
    """The student's line: whether the way to the server is encrypted, by the certificate
    expected (``pin``: the fingerprint given with ``--fingerprint``)."""
    if target.socket:
        return ok("tls", "a unix socket on this machine: nothing crosses a network")
    try:
        served = network.probe_tls(target.host, target.port)
    except ssl.SSLError as exc:  # an OSError too, but the server did answer
        return fail("tls", f"the TLS handshake with {target.where} failed ({exc.reason or exc})")
    except OSError as exc:
        reason = exc.strerror or exc
        return skip("tls", f"cannot reach {target.where} ({reason}): see the login line")
    except NotPostgres as exc:
        return fail("tls", f"{exc}: check the address and port in your URL")
    if not served.tls:
        if target.sslmode not in network.PLAINTEXT_MODES:
            return fail(
                "tls",
                f"the server at {target.where} offers no TLS and your URL requires it "
                f"(sslmode={target.sslmode}): do not connect without it (anyone on the network "
                "could read and take over your session); ask the instructor to serve TLS "
                + RESTART_WITH_TLS,
            )
        if target.loopback:
            return ok("tls", f"no TLS, but {target.host} is this machine")
        return fail(
            "tls",
            f"the server at {target.where} offers no TLS: your session would cross the network "
            "unencrypted; ask the instructor to serve TLS and use the URL `students add` prints",
        )
    return _presented(target, served, pin)


def _presented(target: Target, served: Served, pin: str | None) -> Result:
    """The student's line for a server that offers TLS: its certificate against what is
    expected."""
    assert served.certificate is not None and served.fingerprint is not None
    found = f"{served.protocol}, certificate SHA-256 {served.fingerprint}"
    if target.sslmode == "disable":
        return fail(
            "tls",
            "your URL turns TLS off (sslmode=disable) though the server offers it: use the URL "
            "the instructor gave you (sslmode=require)",
        )
    expiring = network.expiry_problem(served.certificate)
    if expiring is not None and "expired" in expiring:
        return fail("tls", f"{expiring}: the instructor must renew it ({found})")
    if pin is not None and pin != served.fingerprint:
        return fail(
            "tls",
            f"the server's certificate {served.fingerprint} is not the one given ({pin}): you "
            "may be talking to an impostor; do not start the worker, tell the instructor",
        )
    if pin is not None:
        how = "matches the fingerprint given"
    elif target.sslrootcert and target.sslrootcert != "system":
        try:
            pins = network.pinned_fingerprints(target.sslrootcert)
        except GanError as exc:
            return fail(
                "tls",
                f"{exc}: put the certificate file the instructor gave you there (a relative "
                "path is read from the folder you run in)",
            )
        how = (
            f"is the one in {target.sslrootcert}"
            if served.fingerprint in pins
            else f"libpq checks it against {target.sslrootcert} at login"
        )
    elif target.sslmode in network.VERIFYING_MODES:
        how = "libpq checks it against the system's certificate authorities at login"
    else:
        how = (
            f"not pinned (sslmode={target.sslmode}): compare it with the fingerprint the "
            "instructor's `ganfriends db start` printed, or pass --fingerprint"
        )
    if target.sslmode in ("allow", "prefer"):
        return warn(
            "tls",
            f"{found}; but sslmode={target.sslmode} would go unencrypted to an impostor without "
            "TLS: use sslmode=require",
        )
    line = f"{found}: {how}"
    return warn("tls", f"{line}; {expiring}") if expiring else ok("tls", line)


def check_certificate(students: Target, expected: installed.Certificate | None) -> Found[None]:
    """The instructor's line: the certificate students get at the address they connect to
    (``expected``: the one installed for the embedded server, None for another server)."""
    try:
        served = network.probe_tls(students.host, students.port)
    except OSError as exc:
        return Found(fail("certificate", f"cannot reach {students.where} ({exc})"))
    if not served.tls:
        return Found(
            fail("certificate", f"the server at {students.where} serves no TLS: students' "
                 f"sessions cross the network in clear; restart it with TLS {RESTART_WITH_TLS}")
        )  # fmt: skip
    assert served.certificate is not None
    fingerprint = served.fingerprint
    if expected is not None and expected.fingerprint != fingerprint:
        return Found(
            fail("certificate", f"the server serves {fingerprint}, not the certificate in "
                 f"{expected.cert_file} ({expected.fingerprint}): restart it "
                 "(`ganfriends db stop`, then `ganfriends db start`)")
        )  # fmt: skip
    kind = ""
    if expected is not None:
        made = "self-signed" if expected.self_signed else "given"
        kind = f"{made}, for {', '.join(expected.names)}, "
    ends = served.certificate.not_valid_after_utc
    line = (
        f"SHA-256 {fingerprint} ({kind}valid until {ends:%Y-%m-%d}): students can check it with "
        f"`ganfriends doctor --fingerprint {fingerprint}`"
    )
    expiring = network.expiry_problem(served.certificate, within_days=30)
    if expiring is not None:
        status = fail if "expired" in expiring else warn
        return Found(status("certificate", f"{expiring}: renew it; {line}"))
    return Found(ok("certificate", line))
