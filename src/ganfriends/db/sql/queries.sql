-- Named queries of ganfriends (parsed by ganfriends.db.sql: one "-- name:" line per query).
-- Our tables live in schema "ganfriends"; every connection runs with
-- search_path=ganfriends,public, so queries need not qualify table names.
-- Parameters are psycopg named parameters, %(name)s; write a literal percent sign as %%.
-- Workers use only the queries marked [worker]: a least-privilege student role can be granted
-- exactly those later.

-- name: server_now
SELECT now() AS now;

-- The migration runner's queries (ganfriends.db.migrations): keep these names.

-- name: migrations_lock
-- Serialises every migrate/reset of this database, so two processes migrating at once never
-- apply a file twice: a table lock held to the end of the transaction. Not an advisory lock:
-- any role may take any advisory key, and a student holding it would block init-db for good;
-- no student has a privilege on this table, so none can take a lock that conflicts with it.
-- A session holding a table a migration alters makes it wait: lock_timeout turns that into an
-- error that says so instead of a silent wait.
SET LOCAL lock_timeout = '30s';
LOCK TABLE ganfriends.schema_migrations IN EXCLUSIVE MODE;

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS ganfriends;

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS ganfriends.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: create_functions_table
-- The digest of the functions file (sql/functions.sql) last applied: one row.
CREATE TABLE IF NOT EXISTS ganfriends.schema_functions (
    digest text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: functions_digest
SELECT digest FROM ganfriends.schema_functions;

-- name: record_functions
WITH gone AS (DELETE FROM ganfriends.schema_functions)
INSERT INTO ganfriends.schema_functions (digest) VALUES (%(digest)s);

-- name: migrations_table_exists
SELECT to_regclass('ganfriends.schema_migrations') IS NOT NULL AS present;

-- name: applied_migrations
SELECT version, name, applied_at FROM ganfriends.schema_migrations ORDER BY version;

-- name: record_migration
INSERT INTO ganfriends.schema_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: drop_schema
-- Everything ganfriends owns lives in this one schema.
DROP SCHEMA IF EXISTS ganfriends CASCADE;

-- ===================================================================== runs (coordinator)

-- name: set_upload_limit
-- The largest upload worker_submit_result accepts for this run (migration 0007).
UPDATE runs SET max_upload_bytes = %(max_upload_bytes)s WHERE id = %(run_id)s;

-- name: create_run
INSERT INTO runs (name, mode, plan, total_versions, config, model_config, fingerprint,
                  lease_seconds, max_backups, max_units_per_claim, max_live_workers,
                  max_lease_factor, quarantine_after, min_worker_version)
VALUES (%(name)s, %(mode)s, %(plan)s, %(total_versions)s, %(config)s, %(model_config)s,
        %(fingerprint)s, %(lease_seconds)s, %(max_backups)s, %(max_units_per_claim)s,
        %(max_live_workers)s, %(max_lease_factor)s, %(quarantine_after)s,
        %(min_worker_version)s)
RETURNING *;

-- name: latest_running_run
-- [worker] The run a coordinator resumes and a worker joins.
SELECT * FROM runs WHERE state = 'running' ORDER BY id DESC LIMIT 1;

-- name: get_run
-- [worker]
SELECT * FROM runs WHERE id = %(run_id)s;

-- name: run_state
-- [worker] Cheap poll: has the run moved on or finished?
SELECT state, version FROM runs WHERE id = %(run_id)s;

-- name: stop_run
UPDATE runs SET state = 'stopped', updated_at = now() WHERE id = %(run_id)s AND state = 'running';

-- name: lock_run
-- One coordinator per run: the run's row in run_locks names the session holding it, free once
-- that session ends (including when the coordinator is killed). Students cannot write the table,
-- so they cannot take it (an advisory lock is open to every role: migration 0011).
SELECT take_run_lock(%(run_id)s::bigint) AS locked;

-- name: unlock_run
UPDATE run_locks SET holder_pid = NULL, holder_started = NULL
WHERE run_id = %(run_id)s AND holder_pid = pg_backend_pid();

-- name: advance_run
-- Guarded by the expected version: if anything else advanced the run, nothing changes and the
-- coordinator's transaction is rolled back.
UPDATE runs
SET version = %(new_version)s, images_seen = images_seen + %(images)s, updated_at = now(),
    state = CASE WHEN %(complete)s THEN 'complete' ELSE state END,
    completed_at = CASE WHEN %(complete)s THEN now() ELSE completed_at END
WHERE id = %(run_id)s AND version = %(new_version)s - 1 AND state = 'running';

-- ===================================================================== weights

-- name: insert_weights
-- The *_download copies are NULL unless the run downloads rounded weights (migration 0016).
INSERT INTO weights (run_id, version, generator, discriminator,
                     generator_download, discriminator_download)
VALUES (%(run_id)s, %(version)s, %(generator)s, %(discriminator)s,
        %(generator_download)s, %(discriminator_download)s);

-- name: get_weights
-- [worker]
SELECT generator, discriminator FROM weights WHERE run_id = %(run_id)s AND version = %(version)s;

-- name: prune_weights
-- Keep the newest %(keep_last)s versions and every %(keep_every)s-th one.
DELETE FROM weights
WHERE run_id = %(run_id)s
  AND version <= %(newest)s - %(keep_last)s
  AND version %% %(keep_every)s <> 0;

-- name: upsert_optimizer_states
INSERT INTO optimizer_states (run_id, version, generator, discriminator)
VALUES (%(run_id)s, %(version)s, %(generator)s, %(discriminator)s)
ON CONFLICT (run_id) DO UPDATE
SET version = EXCLUDED.version, generator = EXCLUDED.generator,
    discriminator = EXCLUDED.discriminator, updated_at = now();

-- name: get_optimizer_states
SELECT version, generator, discriminator FROM optimizer_states WHERE run_id = %(run_id)s;

-- ===================================================================== work units

-- name: insert_units
-- The units of a version, as the rule lists them: parallel arrays of unit indices and devices
-- (NULL devices for modes without).
INSERT INTO work_units (run_id, version, unit_index, device)
SELECT %(run_id)s, %(version)s, u.unit_index, u.device
FROM unnest(%(unit_indices)s::bigint[], %(devices)s::int[]) AS u (unit_index, device)
ON CONFLICT (run_id, unit_index) DO NOTHING;

-- name: count_units
SELECT count(*) FILTER (WHERE state = 'done') AS done, count(*) AS total
FROM work_units WHERE run_id = %(run_id)s AND version = %(version)s;

-- name: claim_unit
-- [worker] The lowest pending unit of the current version, or one whose leases all expired
-- (worker_claim_unit: FOR UPDATE SKIP LOCKED, by the database clock).
SELECT * FROM worker_claim_unit(%(run_id)s::bigint, %(worker_id)s::bigint);

-- name: claim_units
-- [worker] Up to `count` of the lowest pending units of the current version, capped by the
-- run's max_units_per_claim (worker_claim_units, migration 0010), in unit order.
SELECT * FROM worker_claim_units(%(run_id)s::bigint, %(worker_id)s::bigint, %(count)s::int);

-- name: claim_backup_unit
-- [worker] A copy of a straggler's unit for an idle worker (worker_claim_backup_unit).
SELECT * FROM worker_claim_backup_unit(%(run_id)s::bigint, %(worker_id)s::bigint);

-- name: extend_leases
-- [worker] Heartbeat: push back the expiry of this worker's live leases (worker_extend_leases).
SELECT worker_extend_leases(%(worker_id)s::bigint);

-- name: release_lease
-- [worker] Give a unit back at once (worker_release_lease).
SELECT worker_release_lease(%(token)s::uuid, %(worker_id)s::bigint);

-- name: submit_result
-- [worker] Upload (and completion) in one statement, accepted only while the lease is live
-- (worker_submit_result): late, duplicate and foreign uploads return no row.
SELECT * FROM worker_submit_result(%(run_id)s::bigint, %(worker_id)s::bigint, %(token)s::uuid,
                                   %(images)s::int, %(payload)s::bytea, %(device_state)s::bytea,
                                   %(compute_seconds)s::real);

-- name: insert_inputs
-- A version's published inputs (MD-GAN's generated batches): parallel arrays of names and blobs.
INSERT INTO version_inputs (run_id, version, name, blob)
SELECT %(run_id)s, %(version)s, i.name, i.blob
FROM unnest(%(names)s::text[], %(blobs)b::bytea[]) AS i (name, blob);

-- name: get_inputs
-- [worker] The inputs a unit reads, by name (only those: a worker never downloads the rest).
SELECT name, blob FROM version_inputs
WHERE run_id = %(run_id)s AND version = %(version)s AND name = ANY(%(names)s::text[])
ORDER BY name;

-- name: delete_inputs
DELETE FROM version_inputs WHERE run_id = %(run_id)s AND version = %(version)s;

-- name: permute_device_states
-- MD-GAN's swap: device %(sources)s[i]'s state becomes device %(targets)s[i]'s, all at once.
-- Deleting and re-inserting in one statement never meets the primary key half-way (an UPDATE of
-- the key row by row would collide with a row not yet moved).
WITH moved AS (
    DELETE FROM device_states WHERE run_id = %(run_id)s RETURNING device, version, state
)
INSERT INTO device_states (run_id, device, version, state)
SELECT %(run_id)s, m.target, moved.version, moved.state
FROM moved JOIN unnest(%(sources)s::int[], %(targets)s::int[]) AS m (source, target)
    ON m.source = moved.device;

-- name: get_device_state
-- [worker] The local state a device's unit starts from (no row: the device has not trained yet).
SELECT version, state FROM device_states WHERE run_id = %(run_id)s AND device = %(device)s;

-- ===================================================================== results (coordinator)

-- name: fetch_results
-- The stored copies of the version's units the coordinator has not read yet (it read copy
-- %(seen_units)s[i] of worker %(seen_workers)s[i]), in unit order and, per unit, in order of
-- arrival.
SELECT r.unit_id, r.unit_index, u.device, r.worker_id, w.student, r.images, r.payload,
       r.device_state, r.compute_seconds, r.created_at
FROM results r JOIN work_units u ON u.id = r.unit_id JOIN workers w ON w.id = r.worker_id
WHERE r.run_id = %(run_id)s AND r.version = %(version)s
  AND (r.unit_id, r.worker_id) NOT IN (
      SELECT * FROM unnest(%(seen_units)s::bigint[], %(seen_workers)s::bigint[]))
ORDER BY r.unit_index, r.created_at, r.worker_id;

-- name: result_keys
-- Which copies of the version are stored now (no payloads): what the coordinator read may since
-- have gone with its unit.
SELECT unit_id, worker_id FROM results WHERE run_id = %(run_id)s AND version = %(version)s;

-- name: reject_result
-- A copy that failed validation: drop it and blame its worker. Its unit stays 'done' when another
-- copy is stored, is 'claimed' while another copy is still being computed (until that lease
-- ends), and is pending again otherwise. The unit's row is locked first (the lock order of
-- migration 0008).
WITH unit AS (
    SELECT id FROM work_units WHERE id = %(unit_id)s FOR UPDATE
), dropped AS (
    DELETE FROM results r USING unit
    WHERE r.unit_id = unit.id AND r.worker_id = %(worker_id)s
    RETURNING r.unit_id, r.run_id, r.version, r.unit_index, r.worker_id
), live AS (
    SELECT max(l.expires_at) AS until FROM leases l JOIN dropped ON l.unit_id = dropped.unit_id
    WHERE l.state = 'active' AND l.expires_at > now()
), requeued AS (
    UPDATE work_units u
    SET state = CASE WHEN live.until IS NULL THEN 'pending' ELSE 'claimed' END,
        lease_expires_at = live.until
    FROM dropped, live
    WHERE u.id = dropped.unit_id
      AND NOT EXISTS (SELECT 1 FROM results o
                      WHERE o.unit_id = u.id AND o.worker_id <> dropped.worker_id)
), blamed AS (
    UPDATE workers SET rejected = rejected + 1
    WHERE id IN (SELECT worker_id FROM dropped) AND %(blame)s
)
-- Not blamed (%(blame)s false: a combined update that was not finite, which no one copy can be
-- shown to have caused): kept as a mismatch is, shown but not counted towards quarantine.
INSERT INTO rejections (run_id, worker_id, version, unit_index, reason, mismatch)
SELECT run_id, worker_id, version, unit_index, %(reason)s, NOT %(blame)s FROM dropped;

-- name: drop_copy
-- A valid copy of a unit that another copy already stands for: compared, then not kept.
DELETE FROM results WHERE unit_id = %(unit_id)s AND worker_id = %(worker_id)s;

-- name: credit_workers
-- Exactly the copies the coordinator combined (unit %(unit_ids)s[i] from worker
-- %(worker_ids)s[i]): another copy of the unit, and one that arrived after the coordinator read
-- them (a round closed by quorum), is deleted with its unit, never credited. Each worker's
-- share of each version is also kept in contributions (migration 0015: the report's compute
-- seconds and contribution times).
WITH c AS (
    SELECT r.worker_id, r.run_id, r.version, count(*)::int AS units, sum(r.images) AS images,
           coalesce(sum(r.compute_seconds), 0) AS compute_seconds
    FROM results r
    JOIN unnest(%(unit_ids)s::bigint[], %(worker_ids)s::bigint[]) AS used (unit_id, worker_id)
      ON r.unit_id = used.unit_id AND r.worker_id = used.worker_id
    GROUP BY r.worker_id, r.run_id, r.version
), logged AS (
    INSERT INTO contributions (worker_id, version, run_id, units, images, compute_seconds)
    SELECT worker_id, version, run_id, units, images, compute_seconds FROM c
    ON CONFLICT (worker_id, version) DO UPDATE
    SET units = contributions.units + EXCLUDED.units,
        images = contributions.images + EXCLUDED.images,
        compute_seconds = contributions.compute_seconds + EXCLUDED.compute_seconds,
        credited_at = now()
)
UPDATE workers w
SET units_done = w.units_done + t.units, images_done = w.images_done + t.images
FROM (SELECT worker_id, sum(units) AS units, sum(images) AS images FROM c GROUP BY worker_id) t
WHERE w.id = t.worker_id;

-- name: save_device_states
-- The local states carried by the combined copies become their devices' states.
INSERT INTO device_states (run_id, device, version, state)
SELECT r.run_id, u.device, r.version, r.device_state
FROM results r JOIN work_units u ON u.id = r.unit_id
JOIN unnest(%(unit_ids)s::bigint[], %(worker_ids)s::bigint[]) AS used (unit_id, worker_id)
  ON r.unit_id = used.unit_id AND r.worker_id = used.worker_id
WHERE r.device_state IS NOT NULL AND u.device IS NOT NULL
ON CONFLICT (run_id, device) DO UPDATE
SET version = EXCLUDED.version, state = EXCLUDED.state, updated_at = now();

-- name: record_hoarding
-- Leases of the consumed version held to the lease bound (max_lease_factor unit timeouts) and
-- let time out without an upload become strikes against their workers' students (migration
-- 0011), kept in the rejections before the leases go with their units.
INSERT INTO rejections (run_id, worker_id, version, unit_index, reason)
SELECT u.run_id, l.worker_id, u.version, u.unit_index,
       'held unit ' || u.unit_index || ' to the lease bound without uploading it'
FROM leases l JOIN work_units u ON u.id = l.unit_id JOIN runs r ON r.id = u.run_id
WHERE u.run_id = %(run_id)s AND u.version = %(version)s
  AND (l.state = 'expired' OR (l.state = 'active' AND l.expires_at <= now()))
  AND l.expires_at >= l.claimed_at
                      + make_interval(secs => r.lease_seconds * r.max_lease_factor);

-- name: delete_version_units
-- Consumed: results and leases go with their units (ON DELETE CASCADE), and so do the units a
-- round closed by quorum left unfinished: their late uploads find no lease and are refused.
DELETE FROM work_units WHERE run_id = %(run_id)s AND version = %(version)s;

-- name: insert_update
INSERT INTO updates (run_id, version, epoch, images, images_seen, d_loss, g_loss, d_real, d_fake,
                     contributors, wait_seconds, norms)
VALUES (%(run_id)s, %(version)s, %(epoch)s, %(images)s, %(images_seen)s, %(d_loss)s,
        %(g_loss)s, %(d_real)s, %(d_fake)s, %(contributors)s, %(wait_seconds)s, %(norms)s);

-- name: recent_norms
-- The screening references recorded by the latest %(limit)s updates up to %(version)s, newest
-- first (what a restarted coordinator's screening remembers).
SELECT version, norms FROM updates
WHERE run_id = %(run_id)s AND version <= %(version)s AND norms IS NOT NULL
ORDER BY version DESC LIMIT %(limit)s;

-- name: record_mismatch
-- Two valid copies of a unit disagreed: noted against one of their workers (called for both).
INSERT INTO rejections (run_id, worker_id, version, unit_index, reason, mismatch)
VALUES (%(run_id)s, %(worker_id)s, %(version)s, %(unit_index)s, %(reason)s, true);

-- name: unit_rejections
-- How often copies of one unit were rejected (mismatches aside), by how many students.
SELECT count(*) AS rejected, count(DISTINCT w.student) AS students
FROM rejections j JOIN workers w ON w.id = j.worker_id
WHERE j.run_id = %(run_id)s AND j.version = %(version)s AND j.unit_index = %(unit_index)s
  AND NOT j.mismatch;

-- name: student_standing
-- Per student of the run: live workers registered, rejections counted towards quarantine,
-- whether quarantined, leases let time out (migration 0011's view).
SELECT student, workers, rejections, quarantined, timed_out
FROM student_standing WHERE run_id = %(run_id)s
ORDER BY quarantined DESC, rejections DESC, student;

-- name: pardon_student
-- The instructor lifts a student's quarantine: their earlier rejections stop counting.
INSERT INTO student_pardons (run_id, student) VALUES (%(run_id)s, %(student)s);

-- name: record_rejection
INSERT INTO rejections (run_id, worker_id, version, unit_index, reason)
VALUES (%(run_id)s, %(worker_id)s, %(version)s, %(unit_index)s, %(reason)s);

-- ===================================================================== workers

-- name: register_worker
-- [worker] As the calling role (workers.role_name): see migration 0007. ``version``: the
-- worker's ganfriends release, which the run's minimum must not exceed (migration 0013).
SELECT worker_register(%(run_id)s::bigint, %(name)s::text, %(hostname)s::text,
                       %(device)s::text, %(gpu_name)s::text, %(gpu_vram_gb)s::real,
                       %(cpu_cores)s::int, %(ram_gb)s::real, %(version)s::text) AS id;

-- name: version_refusal
-- [worker] Why this worker's release may not join the run (NULL: it may), asked before it loads
-- its data; worker_register refuses it anyway (migration 0013).
SELECT version_refusal(min_worker_version, %(version)s::text) AS refusal
FROM runs WHERE id = %(run_id)s;

-- name: heartbeat
-- [worker]
SELECT worker_heartbeat(%(worker_id)s::bigint);

-- name: worker_stopped
-- [worker]
SELECT worker_stop(%(worker_id)s::bigint);

-- ===================================================================== status

-- name: status_latest_run
SELECT * FROM runs ORDER BY (state = 'running') DESC, id DESC LIMIT 1;

-- name: status_units
-- Units of the version being computed, by state; claimed units whose leases all expired are
-- counted apart (they go back to the next worker that asks).
SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'claimed' AND lease_expires_at >= now()) AS claimed,
       count(*) FILTER (WHERE state = 'claimed' AND lease_expires_at < now()) AS expired,
       count(*) FILTER (WHERE state = 'done') AS done
FROM work_units WHERE run_id = %(run_id)s AND version = %(version)s;

-- name: leaderboard
-- One line per student name (a restarted worker keeps its name), best contributors first.
-- Uploads still waiting for the coordinator count at once, as pending (migration 0009).
SELECT name,
       (sum(units_done) + coalesce(sum(p.units), 0))::int AS units,
       (sum(images_done) + coalesce(sum(p.images), 0))::bigint AS images,
       coalesce(sum(p.units), 0)::int AS pending,
       sum(rejected)::int AS rejected,
       max(last_heartbeat) AS last_heartbeat,
       extract(epoch FROM now() - max(last_heartbeat))::float8 AS seconds_since_heartbeat,
       bool_or(state = 'active') AS running,
       max(device) AS device,
       max(gpu_name) AS gpu_name,
       max(gpu_vram_gb)::float8 AS gpu_vram_gb,
       max(cpu_cores) AS cpu_cores,
       max(ram_gb)::float8 AS ram_gb
FROM workers w
LEFT JOIN pending_credit p ON p.run_id = w.run_id AND p.worker_id = w.id
WHERE w.run_id = %(run_id)s
GROUP BY name
ORDER BY images DESC, name;

-- name: throughput
-- Images per second over the updates of the last %(window)s seconds.
SELECT coalesce(sum(images), 0)::bigint AS images,
       extract(epoch FROM max(created_at) - min(created_at))::float8 AS span_seconds,
       count(*)::int AS updates
FROM updates
WHERE run_id = %(run_id)s AND created_at > now() - make_interval(secs => %(window)s);

-- name: latest_update
-- The latest whole step, as loss_history's last row: the newest update with a g_loss, D's
-- values taken from the update just before it where it has none. Reads two rows, not the run.
SELECT u.version, u.epoch, u.images_seen, u.g_loss, u.contributors, u.created_at,
       coalesce(u.d_loss, previous.d_loss) AS d_loss,
       coalesce(u.d_real, previous.d_real) AS d_real,
       coalesce(u.d_fake, previous.d_fake) AS d_fake
FROM (SELECT * FROM updates WHERE run_id = %(run_id)s AND g_loss IS NOT NULL
      ORDER BY version DESC LIMIT 1) u
LEFT JOIN LATERAL (
    SELECT d_loss, d_real, d_fake FROM updates p
    WHERE p.run_id = u.run_id AND p.version < u.version ORDER BY p.version DESC LIMIT 1
) previous ON true;

-- name: loss_history
-- One row per optimizer step. An alternating class run records two versions per step, each
-- with NULL for what it does not measure: the G version (g_loss) takes D's values from the D
-- version just before it, and the D version alone is left out.
SELECT version, epoch, images_seen, d_loss, g_loss, d_real, d_fake, contributors, created_at
FROM (
    SELECT version, epoch, images_seen, g_loss, contributors, created_at,
           coalesce(d_loss, lag(d_loss) OVER w) AS d_loss,
           coalesce(d_real, lag(d_real) OVER w) AS d_real,
           coalesce(d_fake, lag(d_fake) OVER w) AS d_fake
    FROM updates WHERE run_id = %(run_id)s
    WINDOW w AS (ORDER BY version)
) steps
WHERE g_loss IS NOT NULL ORDER BY version;

-- name: session_count
-- Sessions on this database now (benchmarks/swarm.py: what max_connections must cover).
SELECT count(*) AS sessions FROM pg_stat_activity WHERE datname = current_database();

-- name: database_size
SELECT pg_database_size(current_database())::bigint AS bytes;

-- name: listen_work
-- [worker] Wake-ups for idle workers: a version was published or a unit put back in the queue.
LISTEN ganfriends_work;

-- name: notify_work
-- Delivered at commit, so a woken worker finds the new units. A hint only: workers also poll.
SELECT pg_notify('ganfriends_work', %(run_id)s::text);

-- name: listen_results
-- The coordinator's wake-up: an upload was accepted (worker_submit_result notifies).
LISTEN ganfriends_results;

-- name: publish_lock_timeout
-- First statement of the publishing transaction. Honest sessions hold a version's rows for
-- milliseconds; a student's session that keeps a transaction open on them (its own
-- idle_in_transaction_session_timeout SET to 0) would otherwise stall the coordinator for good:
-- after 5 s the publish fails, the watchdog below ends that session, and the update is redone.
SET LOCAL lock_timeout = '5s';

-- name: end_stuck_student_sessions
-- The coordinator's watchdog: end the sessions of the class's students (members of
-- "<database>_students") whose transaction began more than %(seconds)s ago. No honest worker
-- transaction lasts that long, and such a session holds row locks that stall a version (a unit
-- it claimed cannot be claimed by anyone else) or the publish. Spared: a transaction of one
-- statement still receiving its data (a slow upload, ClientRead), which holds no lock until its
-- bytes are in. Sees and ends nothing without pg_read_all_stats and pg_signal_backend (the
-- embedded server grants both to its app role) or membership in the student's role (what
-- `students add` gives the instructor's role on a managed server).
SELECT a.pid, a.usename AS role,
       extract(epoch FROM now() - a.xact_start)::float8 AS seconds,
       pg_terminate_backend(a.pid) AS ended
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.xact_start < now() - make_interval(secs => %(seconds)s)
  AND NOT (a.state = 'active' AND a.wait_event IS NOT DISTINCT FROM 'ClientRead'
           AND a.query_start <= a.xact_start + interval '1 second')
  AND a.usesysid IN (SELECT m.member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                     WHERE g.rolname = current_database() || '_students');

-- name: students_out_of_reach
-- The class's students whose sessions the current role can neither see in full nor end, so
-- neither the watchdog (end_stuck_student_sessions) nor `students revoke` can act on them: the
-- role is no superuser, lacks pg_read_all_stats or pg_signal_backend, and is no member of their
-- role (PostgreSQL shows and signals a session to members of its role). On a managed server
-- `students add` makes the instructor's role a member of each student's (admin.sql: reach_student).
SELECT r.rolname AS name
FROM pg_roles r
JOIN pg_auth_members m ON m.member = r.oid
JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = current_database() || '_students'
WHERE NOT pg_has_role(current_user, r.oid, 'USAGE')
  AND NOT (pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
           AND pg_has_role(current_user, 'pg_signal_backend', 'USAGE'))
ORDER BY r.rolname;

-- name: vacuum_blob_tables
-- Run outside a transaction (VACUUM cannot run inside one): reclaims the dead TOAST space of
-- consumed results and replaced weights/optimizer states so the next update reuses it.
-- TRUNCATE false: giving trailing pages back to the OS needs an ACCESS EXCLUSIVE lock, which
-- VACUUM waits up to 5 s for; a student holding ACCESS SHARE on a table they may read (any open
-- transaction that read it) would stall the coordinator that long after every update. The
-- space is reused by the next update either way.
VACUUM (TRUNCATE false) results, weights, optimizer_states, device_states, version_inputs;

-- ===================================================================== evaluations

-- name: insert_evaluation
-- Scores of a version are a function of its weights: a repeated write keeps the first.
INSERT INTO evaluations (run_id, version, images_seen, fid, kid_mean, kid_std, precision, recall,
                         num_samples)
VALUES (%(run_id)s, %(version)s, %(images_seen)s, %(fid)s, %(kid_mean)s, %(kid_std)s,
        %(precision)s, %(recall)s, %(num_samples)s)
ON CONFLICT (run_id, version) DO NOTHING;

-- name: fid_history
-- Read by the dashboard and `ganfriends status`: sample quality against training progress.
SELECT version, images_seen, fid, kid_mean, kid_std, precision, recall, num_samples, created_at
FROM evaluations WHERE run_id = %(run_id)s ORDER BY version;

-- ===================================================================== samples (coordinator)

-- name: insert_sample
-- A version's grid is drawn from fixed noise and fixed weights, so a second write of the same
-- version (a coordinator stopped right after a periodic grid) is the same picture: keep the first.
INSERT INTO samples (run_id, version, png) VALUES (%(run_id)s, %(version)s, %(png)s)
ON CONFLICT (run_id, version) DO NOTHING;

-- ===================================================================== dashboard (read-only)
-- ganfriends.dashboard connects with default_transaction_read_only=on and uses only these
-- queries and the status ones above (status_units, leaderboard, throughput, loss_history).

-- name: dashboard_runs
-- The run selector, newest first; the default is the one status_latest_run picks.
SELECT id, name, state, version, created_at, updated_at,
       (id = (SELECT id FROM runs ORDER BY (state = 'running') DESC, id DESC LIMIT 1)) AS latest
FROM runs ORDER BY id DESC;

-- name: dashboard_run
SELECT * FROM runs WHERE id = %(run_id)s;

-- name: dashboard_throughput_history
-- Per update: the images it trained and the seconds since the previous update (NULL for the
-- first, and across a gap the coordinator was down); the dashboard smooths these into images/s.
SELECT version, created_at, images,
       extract(epoch FROM created_at - lag(created_at) OVER (ORDER BY version))::float8
           AS seconds
FROM updates WHERE run_id = %(run_id)s ORDER BY version;

-- name: dashboard_resources
-- What the workers active in the run bring (heartbeat younger than %(active_seconds)s, the
-- status rule). Workers on one host share its cores and RAM: count each host once. A worker
-- reports its device type only ("cuda"), so each GPU worker counts as one GPU (one per GPU is
-- how a machine with several runs them).
WITH active AS (
    SELECT * FROM workers
    WHERE run_id = %(run_id)s AND state = 'active'
      AND now() - last_heartbeat < make_interval(secs => %(active_seconds)s)
), hosts AS (
    SELECT hostname, max(cpu_cores) AS cpu_cores, max(ram_gb) AS ram_gb
    FROM active GROUP BY hostname
)
SELECT (SELECT count(*) FROM active)::int AS workers,
       (SELECT count(*) FROM hosts)::int AS hosts,
       (SELECT coalesce(sum(cpu_cores), 0) FROM hosts)::int AS cpu_cores,
       (SELECT coalesce(sum(ram_gb), 0) FROM hosts)::float8 AS ram_gb,
       (SELECT count(*) FROM active WHERE gpu_name IS NOT NULL)::int AS gpus,
       (SELECT coalesce(sum(gpu_vram_gb), 0) FROM active)::float8 AS gpu_vram_gb;

-- name: dashboard_sample_versions
-- The grids of a run, without their bytes (the slider's stops).
SELECT version, created_at, octet_length(png) AS bytes
FROM samples WHERE run_id = %(run_id)s ORDER BY version;

-- name: dashboard_sample
SELECT version, png, created_at FROM samples WHERE run_id = %(run_id)s AND version = %(version)s;

-- name: dashboard_rejections_by_worker
-- Refused uploads per student name (a rejection whose worker row is gone counts as "unknown").
SELECT coalesce(w.name, 'unknown') AS name, count(*)::int AS rejected,
       max(r.created_at) AS last_at,
       (array_agg(r.reason ORDER BY r.created_at DESC))[1] AS last_reason
FROM rejections r LEFT JOIN workers w ON w.id = r.worker_id
WHERE r.run_id = %(run_id)s
GROUP BY 1 ORDER BY rejected DESC, name;

-- name: dashboard_recent_rejections
SELECT coalesce(w.name, 'unknown') AS name, r.version, r.unit_index, r.reason, r.created_at
FROM rejections r LEFT JOIN workers w ON w.id = r.worker_id
WHERE r.run_id = %(run_id)s ORDER BY r.created_at DESC, r.id DESC LIMIT %(limit)s;

-- ===================================================================== report

-- name: report_students
-- The instructor's report (ganfriends.classroom.report): one line per student of run
-- %(run_id)s, best contributors first. Students are the class's roles (members of
-- "<database>_students": one who never contributed shows, with zeros) and the run's
-- participants (workers.student: each of the instructor's own workers counts as one, as in
-- migration 0011). Units and images are the combined copies, as the leaderboard credits them
-- (uploads still waiting for the coordinator are not in them); compute seconds and the first
-- and last contribution come from contributions (migration 0015), which no student's role may
-- read: the database itself refuses this report to a student.
WITH work AS (
    SELECT student, count(*)::int AS workers, sum(units_done)::int AS units,
           sum(images_done)::bigint AS images, sum(rejected)::int AS rejected
    FROM workers WHERE run_id = %(run_id)s GROUP BY student
), credit AS (
    SELECT w.student, sum(c.compute_seconds)::float8 AS compute_seconds,
           min(c.credited_at) AS first_contribution, max(c.credited_at) AS last_contribution
    FROM contributions c JOIN workers w ON w.id = c.worker_id
    WHERE c.run_id = %(run_id)s GROUP BY w.student
), class AS (
    SELECT r.rolname::text AS student
    FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid
    JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = current_database() || '_students'
)
SELECT everyone.student, coalesce(work.workers, 0) AS workers, coalesce(work.units, 0) AS units,
       coalesce(work.images, 0) AS images, coalesce(credit.compute_seconds, 0) AS compute_seconds,
       credit.first_contribution, credit.last_contribution,
       coalesce(work.rejected, 0) AS rejected, coalesce(st.rejections, 0) AS strikes,
       coalesce(st.quarantined, false) AS quarantined
FROM (SELECT student FROM class UNION SELECT student FROM work) AS everyone
LEFT JOIN work USING (student)
LEFT JOIN credit USING (student)
LEFT JOIN student_standing st ON st.run_id = %(run_id)s AND st.student = everyone.student
ORDER BY images DESC, student;

-- name: report_run_times
-- The run summary's wall time: from the run's creation to its completion, to now while it
-- runs, to its last change once stopped.
SELECT created_at, completed_at,
       extract(epoch FROM coalesce(completed_at,
                                   CASE WHEN state = 'running' THEN now() ELSE updated_at END)
                          - created_at)::float8 AS wall_seconds
FROM runs WHERE id = %(run_id)s;

-- ===================================================================== doctor
-- `ganfriends doctor` (src/ganfriends/doctor): read-only checks, as a student or the instructor.

-- name: doctor_ping
-- One round trip and nothing else: the median of a few is the latency a worker pays per statement.
SELECT 1 AS ping;

-- name: doctor_session
-- Who this session is and how it travels: its role, the server's version, TLS and its protocol.
SELECT current_user AS role, current_setting('server_version') AS server_version,
       coalesce(s.ssl, false) AS tls, s.version AS tls_version
FROM (SELECT pg_backend_pid() AS pid) me LEFT JOIN pg_stat_ssl s ON s.pid = me.pid;

-- name: doctor_worker_rights
-- What a worker needs of its role (admin.sql grant_class_access): the schema, the tables it reads
-- (the run, its weights, inputs and device states) and the functions its queries above call
-- (migration 0007; worker_check and worker_may_claim are theirs, never called directly), each
-- with whether the current role may use it. No rows: no schema.
SELECT 'schema ' || n.nspname AS object, has_schema_privilege(n.oid, 'USAGE') AS allowed
FROM pg_namespace n WHERE n.nspname = 'ganfriends'
UNION ALL
SELECT 'table ' || c.relname, has_table_privilege(c.oid, 'SELECT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ganfriends'
  AND c.relname IN ('runs', 'weights', 'version_inputs', 'device_states')
UNION ALL
SELECT 'function ' || p.proname, has_function_privilege(p.oid, 'EXECUTE')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'ganfriends'
  AND p.proname IN ('worker_register', 'worker_heartbeat', 'worker_extend_leases',
                    'worker_claim_units', 'worker_claim_backup_unit', 'worker_submit_result',
                    'worker_release_lease', 'worker_stop')
ORDER BY 1;

-- name: doctor_my_standing
-- [worker] The calling student's standing in the run (migration 0011's view): quarantined, and
-- how many of their workers are alive against the run's limit. No row: no worker of theirs yet.
SELECT s.quarantined, s.rejections, s.workers, r.max_live_workers, r.quarantine_after
FROM student_standing s JOIN runs r ON r.id = s.run_id
WHERE s.run_id = %(run_id)s AND s.student = current_user;

-- name: doctor_server
-- The instructor's view of the server: its connection slots (those kept for superusers and for
-- the instructor's role are not the students'), the client sessions open now, the class's
-- students who may log in, and the addresses it listens on.
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_slots,
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved_slots,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
           AS sessions,
       (SELECT count(*) FROM pg_roles s
        JOIN pg_auth_members m ON m.member = s.oid
        JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = current_database() || '_students'
        WHERE s.rolcanlogin)::int AS students,
       current_setting('listen_addresses') AS listen_addresses,
       pg_database_size(current_database())::bigint AS database_bytes;

-- name: doctor_coordinator
-- The running run and whether a coordinator holds it: the lock's session alive by the same test
-- take_run_lock makes (pid and start time), and how long ago its latest update was published.
SELECT r.id AS run_id, r.mode, r.version, r.total_versions, l.holder_pid, l.taken_at,
       l.holder_pid IS NOT NULL AND EXISTS (
           SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.holder_pid
             AND (a.backend_start IS NULL OR a.backend_start = l.holder_started)) AS alive,
       extract(epoch FROM now() - (SELECT max(u.created_at) FROM updates u
                                   WHERE u.run_id = r.id))::float8 AS seconds_since_update
FROM runs r LEFT JOIN run_locks l ON l.run_id = r.id
WHERE r.state = 'running'
ORDER BY r.id DESC LIMIT 1;

-- ===== changed-only downloads (issue 22)

-- name: get_changed_weights
-- [worker] A version's networks as workers download them (the rounded copy where the run
-- publishes one, migration 0016): the digests (migration 0014), and each blob only where its
-- digest differs from the one the worker holds (NULL where it holds that network already), in
-- one round trip. A blob left out is never read from its TOAST table.
SELECT generator_sha256, discriminator_sha256,
       CASE WHEN generator_sha256 IS NOT DISTINCT FROM %(generator_sha256)s::bytea
            THEN NULL ELSE COALESCE(generator_download, generator) END AS generator,
       CASE WHEN discriminator_sha256 IS NOT DISTINCT FROM %(discriminator_sha256)s::bytea
            THEN NULL ELSE COALESCE(discriminator_download, discriminator) END AS discriminator
FROM weights WHERE run_id = %(run_id)s AND version = %(version)s;
