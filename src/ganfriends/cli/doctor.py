"""``ganfriends doctor``: preflight checks for a student's worker, or ``--instructor``'s class."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ganfriends.cli.flags import command, config_from
from ganfriends.config import redact_url


def _doctor(args: argparse.Namespace) -> int:
    """Check, one line each, what a worker needs on this machine (the URL, TLS and the server's
    certificate, the login and its rights, the running run, its dataset here, the device, the
    latency and download speed, one timed unit, and the --units-per-claim to use); with
    --instructor, what the class needs (the server, its address and certificate, connection
    slots, disk space, the coordinator). Exits 0 when a worker (or the class) would work, 1 when
    a check failed, 2 for a URL it cannot read. Nothing is written to the database."""
    from ganfriends.doctor.checks import Report, fail, print_line
    from ganfriends.doctor.instructor import check_instructor
    from ganfriends.doctor.network import BadInput
    from ganfriends.doctor.student import check_student

    config = config_from(args)
    if args.url and redact_url(args.url) != args.url:
        print(
            "warning: this URL holds a password, which any user of this machine can read (ps, "
            "shell history): GANFRIENDS_DATABASE_URL keeps it out of sight, as for the worker",
            file=sys.stderr,
        )
    report = Report(print_line)
    try:
        if args.instructor:
            return check_instructor(config, args.url, workers=args.workers, report=report)
        return check_student(config, args.url, fingerprint=args.fingerprint, report=report)
    except BadInput as exc:
        print_line(fail(exc.check, str(exc)))
        return exc.exit_status


def add_doctor_command(commands: Any, verbose: argparse.ArgumentParser) -> None:
    """The ``doctor`` subcommand; its config flags are the worker's it checks with."""
    doctor = command(
        commands, verbose, "doctor", "preflight checks: would a worker (or the class) work here?",
        _doctor,
    )  # fmt: skip
    doctor.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="the database URL to check (default: the worker's: --db, GANFRIENDS_DATABASE_URL, "
        "config.yaml)",
    )
    doctor.add_argument(
        "--instructor",
        action="store_true",
        help="check the class's side: server, address, certificate, slots, disk, coordinator",
    )
    doctor.add_argument(
        "--fingerprint",
        metavar="SHA256",
        help="the server certificate's fingerprint, as the instructor's `ganfriends db start` "
        "printed it: the doctor checks the server presents that one",
    )
    doctor.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --instructor: the workers to expect (default: one per student)",
    )
