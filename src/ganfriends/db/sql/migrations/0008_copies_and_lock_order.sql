-- 0008: the first *valid* copy of a unit wins, copies are compared, and one lock order.
--
-- Until now the first upload of a unit completed it and superseded every other copy's lease,
-- before the coordinator had validated anything: a hostile or broken worker that answered fast
-- cancelled the honest backup copy, and the unit went back to the queue. Now every worker that
-- holds a live lease on a unit may store its copy (one per worker: the primary key), the unit is
-- 'done' once it has one, and the coordinator uses the first copy that passes validation. A
-- rejected copy puts its unit back to 'claimed' while another copy is still being computed, to
-- 'pending' otherwise. When two valid copies are there, the coordinator compares them and records
-- a mismatch against both workers (a free-rider next to an honest worker becomes visible).
-- Copies are bounded by runs.max_backups + 1 per unit and go with their unit at publication.

-- The functions it re-created (worker_extend_leases, worker_release_lease, worker_submit_result)
-- live in ../functions.sql, in their current form.

ALTER TABLE results DROP CONSTRAINT results_pkey;
ALTER TABLE results ADD PRIMARY KEY (unit_id, worker_id);

-- A mismatch between two valid copies is recorded beside the rejections (shown with them) but is
-- not one: it blames nobody in particular and does not count towards a unit's rejection cap.
ALTER TABLE rejections ADD COLUMN mismatch boolean NOT NULL DEFAULT false;
CREATE INDEX rejections_unit ON rejections (run_id, version, unit_index) WHERE NOT mismatch;

-- One lock order in every statement that touches both: the unit's row, then its leases.
-- worker_submit_result takes the unit (FOR UPDATE OF u) and then writes the lease; the heartbeat
-- and the release (now in ../functions.sql) used to write the lease first and the unit second,
-- so a worker's heartbeat thread and its own upload could each hold what the other waited for
-- (a deadlock that PostgreSQL breaks by aborting one of them after deadlock_timeout).
