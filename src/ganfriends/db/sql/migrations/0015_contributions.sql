-- 0015: what each worker contributed to each version, for the instructor's report.
--
-- workers.units_done and images_done are running totals; how long a copy took (its
-- compute_seconds) and when it was credited went with its result row once the version was
-- consumed. `ganfriends report` grades from them: compute seconds per student, and their first
-- and last contribution. credit_workers (queries.sql) adds one row per worker and consumed
-- version, in the publishing transaction, for exactly the copies it credits.
--
-- No grant to the class's students (admin.sql's grant_class_access lists what they may read):
-- the report is the instructor's, and the database itself refuses it to a student's role.
-- compute_seconds is what the worker reported for its copies, not measured by the coordinator.

CREATE TABLE contributions (
    worker_id       bigint NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    version         integer NOT NULL,  -- the version the copies were computed on
    run_id          bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    units           integer NOT NULL CHECK (units > 0),
    images          bigint NOT NULL,
    compute_seconds double precision NOT NULL,
    credited_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, version)
);
CREATE INDEX contributions_run ON contributions (run_id);
