-- 0013: a run accepts workers of a ganfriends at least as new as the one it records.
--
-- A worker of an older ganfriends could join a run whose result format had moved on and learn it
-- only from rejected uploads. Now every run records the oldest release whose workers it accepts
-- (ganfriends.compat.RESULT_FORMAT_VERSION when the coordinator created it), a worker declares its
-- own release when it registers, and worker_register (functions.sql) refuses an older one, or one
-- that declares nothing, with the line naming the release to install. The database does the
-- comparison, as numbers (release_parts), so a student's Python cannot skip it; a student who
-- declares a newer release than they run only gets rejected uploads, as before.
--
-- Runs created before this migration accept today's workers: 0.1.0, the first release to declare.

ALTER TABLE runs ADD COLUMN min_worker_version text NOT NULL DEFAULT '0.1.0'
    CHECK (min_worker_version ~ '^[0-9]{1,9}(\.[0-9]{1,9}){0,5}$');
-- From now on the coordinator states it for every new run (one place in Python says which).
ALTER TABLE runs ALTER COLUMN min_worker_version DROP DEFAULT;
