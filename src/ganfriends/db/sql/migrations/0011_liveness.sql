-- 0011: the worst one student can do is waste their own work.
--
-- Until now the worker functions limited each *registration*: one live claim per worker, three
-- rejected uploads per worker, 32 workers per role. A student with many registrations could
-- therefore hold a version's every unit and its backups, extend them forever, and make the
-- coordinator stop with five bad copies of one unit. Limits now apply per *student*:
--
-- - workers.student names who is behind a worker: the role that registered it for a student's
--   role; for the instructor's own role (the schema's owner: the demo, tests, benchmarks), each
--   worker is its own participant, since the owner is trusted and runs many workers on purpose.
-- - A student holds at most runs.max_units_per_claim live leases across all their workers, and
--   while other students are active no more of a version's units than its fair share.
-- - A lease is extended by its own worker's heartbeat, up to runs.max_lease_factor times the
--   unit timeout after its claim; then it times out and its unit goes to another student: the
--   student who let a lease time out gets no new lease on that unit while another participant
--   is active.
-- - Backup copies are counted live (distinct students holding a live lease or a stored copy of
--   the unit), so they come back down when a copy is given back, expires or is rejected, and a
--   backup never goes to a student who already holds the unit.
-- - A student whose copies were rejected runs.quarantine_after times is quarantined: refused
--   registration, claims and uploads until the instructor pardons them (student_pardons).
-- - A student has at most runs.max_live_workers workers alive at once (heartbeat within the
--   unit timeout); dead ones do not count, so restarts never lock anyone out.
--
-- And the run's lock is a row students cannot write, held by a live session (run_locks), instead
-- of an advisory lock any role may take.

-- The functions and the student_standing view that enforce this live in ../functions.sql, in
-- their current form.

ALTER TABLE workers ADD COLUMN student text;
UPDATE workers w SET student = CASE
    WHEN w.role_name = (SELECT nspowner::regrole::text FROM pg_namespace
                        WHERE nspname = 'ganfriends')
    THEN w.role_name || '/' || w.id ELSE w.role_name END;
ALTER TABLE workers ALTER COLUMN student SET NOT NULL;
CREATE INDEX workers_student ON workers (run_id, student);

ALTER TABLE runs ADD COLUMN max_live_workers int NOT NULL DEFAULT 8
    CHECK (max_live_workers BETWEEN 1 AND 1024);
ALTER TABLE runs ADD COLUMN max_lease_factor double precision NOT NULL DEFAULT 3
    CHECK (max_lease_factor >= 1);
ALTER TABLE runs ADD COLUMN quarantine_after int NOT NULL DEFAULT 3
    CHECK (quarantine_after >= 1);

-- Per-group reference norms the coordinator's screening recorded for each version (what the
-- next versions' outliers are measured against, so a round's own uploads cannot set it alone).
ALTER TABLE updates ADD COLUMN norms jsonb;

-- The instructor lifts a quarantine: rejections before the latest pardon no longer count.
CREATE TABLE student_pardons (
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    student    text NOT NULL,
    pardoned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, student, pardoned_at)
);

-- One coordinator per run. The holder is a session (pid and start time, so a reused pid is not
-- mistaken for it): the lock is free once that session ends (a killed coordinator, a server
-- restart) and only roles that may update this table (the owner) can take it.
CREATE TABLE run_locks (
    run_id         bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    holder_pid     int,
    holder_started timestamptz,
    taken_at       timestamptz
);
