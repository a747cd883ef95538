"""``ganfriends doctor``: preflight checks for a student's worker or an instructor's class.

Each check is a small function returning a :class:`~ganfriends.doctor.checks.Result` (one line:
``ok``, ``warn``, ``FAIL`` or ``skip``, the check's name, what was found or what to do).
:mod:`~ganfriends.doctor.student` checks what a worker needs (its URL, TLS, login, rights, the
run, the dataset, the device, the network, one timed unit); :mod:`~ganfriends.doctor.instructor`
what a class needs (the server, its address and certificate, connection slots, disk space, the
coordinator). Nothing is written to the database: a doctor run leaves no trace in the run.
"""
