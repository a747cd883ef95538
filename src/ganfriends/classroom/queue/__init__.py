"""The typed queue layer between the coordinator/worker loops and the SQL of ``queries.sql``.

Rows become frozen dataclasses here, at the boundary (as procrastinate's manager does), so the
loops never index dicts. One module per side of the queue:

- :mod:`~ganfriends.classroom.queue.runs`: a run (:class:`Run`), created, found, its state;
- :mod:`~ganfriends.classroom.queue.versions`: publishing a version, in the caller's
  transaction (:func:`publish`), and reading its weights, states and inputs back;
- :mod:`~ganfriends.classroom.queue.claims`: the worker's side (register, claim, submit, release);
- :mod:`~ganfriends.classroom.queue.uploads`: the coordinator's side (a version's uploads,
  rejected, dropped, counted; stuck students' sessions ended).

Callers use this package's names (``queue.claim``, ``queue.Run``); the modules are its layout.
"""

from __future__ import annotations

from ganfriends.classroom.queue.claims import (
    Claim,
    Hardware,
    Outgoing,
    check_version,
    claim,
    register_worker,
    release,
    submit,
)
from ganfriends.classroom.queue.runs import (
    DEFAULT_LIMITS,
    Run,
    StudentLimits,
    create_run,
    get_run,
    latest_running_run,
    latest_running_run_id,
    run_state,
    set_upload_limit,
)
from ganfriends.classroom.queue.uploads import (
    EndedSession,
    UnitCounts,
    Upload,
    count_units,
    drop_copy,
    end_stuck_student_sessions,
    recent_norms,
    record_mismatch,
    reject,
    unit_rejections,
    upload_keys,
    uploads,
)
from ganfriends.classroom.queue.versions import (
    Blobs,
    Changed,
    Consumed,
    Retention,
    changed_weights,
    device_state,
    inputs,
    optimizer_states,
    publish,
    weights,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Blobs",
    "Changed",
    "Claim",
    "Consumed",
    "EndedSession",
    "Hardware",
    "Outgoing",
    "Retention",
    "Run",
    "StudentLimits",
    "UnitCounts",
    "Upload",
    "changed_weights",
    "check_version",
    "claim",
    "count_units",
    "create_run",
    "device_state",
    "drop_copy",
    "end_stuck_student_sessions",
    "get_run",
    "inputs",
    "latest_running_run",
    "latest_running_run_id",
    "optimizer_states",
    "publish",
    "recent_norms",
    "record_mismatch",
    "register_worker",
    "reject",
    "release",
    "run_state",
    "set_upload_limit",
    "submit",
    "unit_rejections",
    "upload_keys",
    "uploads",
    "weights",
]
