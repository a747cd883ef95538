"""What arrives from the workers, before it counts: the coordinator's intake of a version.

Every stored copy of a unit is decoded against the run's rule (names, shapes, dtypes, finite and
bounded values, image counts, device states) and refused if it did no work at all. The first
copy of a unit that passes stands for it ("the first valid result wins"); a copy that fails is
rejected against its worker, and its unit waits for another copy or goes back to the queue
(``queue.reject``) and counts towards its student's quarantine (migration 0011: a student whose
uploads keep failing gets no more units, and only wastes their own work). Only when copies of
one unit from MAX_FAILING_STUDENTS distinct students failed does the coordinator stop: a unit
that fails for everyone is far more likely our bug (unreadable data, a version mismatch) than a
conspiracy, and the message says so. A second valid copy is compared
with the first: copies that disagree are recorded against both workers, so a free-rider next to
an honest worker shows."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from ganfriends.blobs import InvalidBlob
from ganfriends.classroom import queue
from ganfriends.classroom.payload import decode_device_state, decode_result
from ganfriends.classroom.queue import Upload
from ganfriends.classroom.state import RunState
from ganfriends.db import Database
from ganfriends.errors import GanError
from ganfriends.rules.base import UnitResult
from ganfriends.rules.capabilities import device_state_spec
from ganfriends.rules.screening import copies_differ, is_all_zero

# Distinct students whose copies of one unit failed before the coordinator stops and says so.
# One student (with any number of workers) can never reach it alone; students' own quarantine
# would otherwise let a unit that fails for everyone go round the class until all are blocked.
MAX_FAILING_STUDENTS = 3


class UnitKeepsFailing(GanError):
    """Copies of one unit from MAX_FAILING_STUDENTS distinct students failed validation."""


@dataclass(frozen=True)
class Valid:
    """An upload that passed validation, and what it holds."""

    upload: Upload
    result: UnitResult


class Intake:
    """The coordinator's reading of the current version, kept across its polls.

    Each copy is fetched and validated once, as soon as it is stored (the coordinator reads
    while the rest of the version is being computed), so the update at the end only fetches the
    last arrivals and combines. What a copy's row loses meanwhile (its unit requeued, the run
    reloaded) is dropped from what was read.
    """

    def __init__(self) -> None:
        self.version: int | None = None
        self.run_id: int | None = None
        self.read: dict[tuple[int, int], Valid] = {}  # valid copies, by (unit_id, worker_id)

    def results(self, db: Database, state: RunState, console: Console) -> list[Valid] | None:
        """The first valid copy of each unit of the current version, in unit order; None after
        rejecting a copy (its unit may be back in the queue: the caller waits again).

        Later valid copies of a unit are compared with the first, then dropped: the first valid
        copy (in order of arrival) stands for the unit.
        """
        if (state.run_id, state.version) != (self.run_id, self.version):
            self.run_id, self.version, self.read = state.run_id, state.version, {}
        stored = queue.upload_keys(db, state.run_id, state.version)
        self.read = {key: v for key, v in self.read.items() if key in stored}
        rejected = False
        for upload in queue.uploads(db, state.run_id, state.version, seen=self.read.keys()):
            try:
                result = decode(state, upload)
            except InvalidBlob as exc:
                rejected = True
                reject_copy(db, state, upload, str(exc), console)
                continue
            self.read[upload.key] = Valid(upload, result)
        first: dict[int, Valid] = {}
        for valid in sorted(self.read.values(), key=_arrival):
            used = first.get(valid.upload.unit_id)
            if used is None:
                first[valid.upload.unit_id] = valid
                continue
            compare_copies(db, state, used, valid, console)
            queue.drop_copy(db, valid.upload)
            del self.read[valid.upload.key]
        return None if rejected else list(first.values())


def _arrival(valid: Valid) -> tuple[int, float, int]:
    """Unit order, then the copies of a unit in order of arrival."""
    upload = valid.upload
    arrived = upload.arrived.timestamp() if upload.arrived is not None else 0.0
    return (upload.unit.index, arrived, upload.worker_id)


def reject_copy(
    db: Database, state: RunState, upload: Upload, reason: str, console: Console
) -> None:
    """Refuse a copy against its worker (and its student's quarantine count); stop the run when
    copies of its unit failed for several students."""
    queue.reject(db, state.run_id, upload, reason)
    # The reason may quote a student's text: never let it be read as markup.
    console.print(
        f"[red]rejected[/] unit {upload.unit.index} "
        f"from worker {upload.worker_id} ({escape(upload.student)}): {escape(reason)}",
        highlight=False,
    )
    index = upload.unit.index
    times, students = queue.unit_rejections(db, state.run_id, state.version, index)
    if students >= MAX_FAILING_STUDENTS:
        raise UnitKeepsFailing(
            f"unit {upload.unit.index} of version {state.version} was rejected {times} "
            f"times, from {students} different students: likely a bug or a data problem on "
            f"our side, not a student's doing; the last reason: {reason}. Stopping: the run "
            "resumes from this version once the cause is found (`ganfriends status`)"
        )


def decode(state: RunState, upload: Upload) -> UnitResult:
    """``upload`` decoded and checked against the rule's spec; :class:`InvalidBlob` if not."""
    server = state.server
    spec = state.rule.result_spec(server.generator, server.discriminator, state.version)
    state_spec = device_state_spec(state.rule, server.generator, server.discriminator)
    result = decode_result(upload.payload, spec, max_images=state.rule.max_images(upload.unit))
    if result.images != upload.images:
        # The leaderboard credits the row's count: it must be the validated one.
        raise InvalidBlob(f"upload claims {upload.images} images, its blob {result.images}")
    if (state_spec is None) != (upload.device_state is None):
        raise InvalidBlob("upload has no device state" if state_spec else "unexpected device state")
    if state_spec is not None and upload.device_state is not None:
        result.device_state = decode_device_state(upload.device_state, state_spec)
    if is_all_zero(result):  # a free-rider's upload must not earn credit
        raise InvalidBlob("every tensor of the result is zero: no work was done")
    return result


def compare_copies(
    db: Database, state: RunState, used: Valid, other: Valid, console: Console
) -> None:
    """Record a mismatch against both workers when two copies of a unit disagree."""
    differs = copies_differ(used.result, other.result)
    if differs is None:
        return
    group, difference = differs
    a, b = used.upload.worker_id, other.upload.worker_id
    reason = (
        f"copies of unit {used.upload.unit.index} disagree ({group} differs by "
        f"{difference:.3g} relative): workers {a} and {b}; worker {a}'s arrived first"
    )
    for upload in (used.upload, other.upload):
        queue.record_mismatch(db, state.run_id, state.version, upload, reason)
    console.print(f"[yellow]mismatch[/]: {reason}", highlight=False)
