-- 0009: a student's upload shows on the leaderboard at once.
--
-- Workers were credited when the coordinator consumed a version, so a student's first unit
-- appeared minutes later on a class with slow peers (the complaint peers' participants voiced
-- most). This view counts, per worker, the copies stored and not yet consumed. The leaderboard
-- adds them as pending credit; a copy that fails validation or loses to another copy of its unit
-- leaves the view with its result row. The view runs with its owner's rights, so students read
-- these counts without reading `results` (others' uploads stay private).

CREATE VIEW pending_credit AS
SELECT run_id, worker_id, count(*)::int AS units, sum(images)::bigint AS images
FROM results
GROUP BY run_id, worker_id;
