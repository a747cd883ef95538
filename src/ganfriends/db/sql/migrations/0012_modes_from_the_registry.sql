-- 0012: the modes a run may have are those of the Python registry (ganfriends.rules.registry),
-- not a list here.
--
-- 0005 checked runs.mode against the three modes of its day, so a new mode needed a migration
-- too. Only the coordinator's role writes runs, from a mode the registry knows; a ganfriends
-- that does not know a stored run's mode refuses the run when it reads its plan, naming the
-- upgrade. The column keeps the form of a mode's name (the registry checks the same form).

ALTER TABLE runs DROP CONSTRAINT runs_mode_check;
ALTER TABLE runs ADD CONSTRAINT runs_mode_name CHECK (mode ~ '^[a-z][a-z0-9-]*$');
