-- 0007: everything a worker writes goes through these functions, so that a student's role needs
-- no write privilege on any table.
--
-- Why functions rather than row-level security: a worker's writes are not "rows of its own" but
-- state transitions of shared rows (a unit goes pending -> claimed -> done, a lease is created,
-- extended, finished), each valid only under conditions on other rows (the run's version, the
-- lease's expiry by the database clock). RLS could only say which rows a role may touch, not
-- which transitions; a SECURITY DEFINER function is exactly one transition, checked in full.
--
-- Identity: a worker row records the role that registered it (workers.role_name = session_user,
-- which a session cannot change without superuser). Every function acts only for workers of the
-- calling role, so nothing a student sends can name another student's worker, lease or result.
-- The instructor's role registers the demo's and the tests' workers and acts for them the same
-- way. The functions run as their owner (the schema owner) with a fixed search_path.

-- The worker functions this migration introduced live in ../functions.sql, in their current form.

ALTER TABLE workers ADD COLUMN role_name text NOT NULL DEFAULT session_user;
CREATE INDEX workers_role ON workers (role_name);

-- Limits a worker cannot talk its way around, enforced by the statements themselves:
--
-- - One live lease per worker: an honest worker computes one unit at a time, so a claim while it
--   holds a live lease returns nothing (one worker heartbeating could otherwise hold every unit
--   of a version, and its backups, forever).
-- - A worker with MAX_REJECTED (3) rejected uploads may not claim again: the error says why, and
--   a bad unit is no longer requeued to the same worker without limit.
-- - At most 32 workers per role and run (each `ganfriends worker` start registers one).
-- - An upload larger than the run's max_upload_bytes (set by the coordinator from the exact size
--   of an honest result) is refused by the upload statement: it is never stored.

ALTER TABLE runs ADD COLUMN max_upload_bytes bigint;  -- NULL: no limit (set by the coordinator)
