"""Which ganfriends releases can work together in one class run (migration 0013).

Students install at different times. A run records the oldest release whose workers it accepts
(:data:`RESULT_FORMAT_VERSION` when the coordinator creates it), every worker declares its own
(:data:`WORKER_VERSION`) when it registers, and the database refuses an older one with the line
naming the release to install: a worker never computes units whose uploads the run would reject.
A worker asks the same verdict before it loads its data (``queue.check_version``), so a student
learns to upgrade before minutes of hashing; the refusal at registration is the one that counts.
"""

from __future__ import annotations

import re

from ganfriends import __version__
from ganfriends.errors import GanError

# The oldest ganfriends release whose uploads this code reads: the result format's version.
# Raise it to the release being made whenever that release changes what a worker computes or
# sends in a way an older worker would get wrong: the payload encoding (classroom/payload.py), a
# rule's unit arithmetic or its published inputs, the device state, the dataset fingerprint or
# labels, the worker functions' arguments. Runs created from then on refuse older workers; runs
# already created keep the minimum they recorded. (A 0.1.0 installed before the gate declares
# nothing and is refused too, with this line: the first release after it should raise this.)
RESULT_FORMAT_VERSION = "0.1.0"

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


def release(version: str) -> str:
    """The release segment of a PEP 440 version: ``0.2.0`` for ``0.2.0``, ``0.2.0.dev3+g12ab``
    or ``0.2.0rc1``. A development build of the release that raised the minimum is accepted by
    the runs it creates."""
    match = _RELEASE.match(version)
    if match is None:
        raise ValueError(f"not a release version: {version!r}")
    return match.group(0)


# What this worker declares at registration (the database compares it as numbers).
WORKER_VERSION = release(__version__)

# The SQLSTATE worker_register raises for a worker older than the run accepts (functions.sql).
TOO_OLD_STATE = "GF001"


class WorkerTooOld(GanError):
    """This ganfriends is older than the run accepts: install the release the run names."""

    exit_status = 2  # not worth retrying: the same install is refused again
