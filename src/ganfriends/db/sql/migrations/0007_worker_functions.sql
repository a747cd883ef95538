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

ALTER TABLE workers ADD COLUMN role_name text NOT NULL DEFAULT session_user;
CREATE INDEX workers_role ON workers (role_name);

-- Raise unless the calling role registered this worker.
CREATE FUNCTION worker_check(p_worker_id bigint) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM workers WHERE id = p_worker_id AND role_name = session_user) THEN
        RAISE EXCEPTION 'worker % is not one of yours', p_worker_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

CREATE FUNCTION worker_heartbeat(p_worker_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
    UPDATE workers SET last_heartbeat = now(), state = 'active' WHERE id = p_worker_id;
$$;

-- Heartbeat: push back the expiry of this worker's live leases. An expired lease is not revived
-- (its unit may already be someone else's).
CREATE FUNCTION worker_extend_leases(p_worker_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
    WITH extended AS (
        UPDATE leases l
        SET expires_at = now() + make_interval(secs => r.lease_seconds)
        FROM work_units u JOIN runs r ON r.id = u.run_id
        WHERE l.worker_id = p_worker_id AND l.state = 'active' AND l.expires_at > now()
          AND u.id = l.unit_id
        RETURNING l.unit_id, l.expires_at
    )
    UPDATE work_units u SET lease_expires_at = greatest(u.lease_expires_at, extended.expires_at)
    FROM extended WHERE u.id = extended.unit_id;
$$;

-- Give a unit back at once (second Ctrl+C): if no other copy is live, it is pending again.
CREATE FUNCTION worker_release_lease(p_token uuid, p_worker_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
    WITH released AS (
        UPDATE leases SET state = 'released', finished_at = now()
        WHERE token = p_token AND worker_id = p_worker_id AND state = 'active'
        RETURNING leases.unit_id
    )
    UPDATE work_units u SET state = 'pending', lease_expires_at = NULL
    FROM released
    WHERE u.id = released.unit_id AND u.state = 'claimed'
      AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.unit_id = u.id AND l.state = 'active'
                      AND l.expires_at > now() AND l.token <> p_token);
$$;

CREATE FUNCTION worker_stop(p_worker_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
    UPDATE workers SET state = 'stopped', last_heartbeat = now() WHERE id = p_worker_id;
$$;

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

CREATE FUNCTION worker_may_claim(p_worker_id bigint) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
BEGIN
    PERFORM worker_check(p_worker_id);
    IF (SELECT rejected FROM workers WHERE id = p_worker_id) >= 3 THEN
        RAISE EXCEPTION 'worker % had 3 uploads rejected: it may not claim more units (see '
                        '`ganfriends status`; start a fresh worker once the cause is fixed)',
                        p_worker_id USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

CREATE FUNCTION worker_register(
    p_run_id bigint, p_name text, p_hostname text, p_device text, p_gpu_name text,
    p_gpu_vram_gb real, p_cpu_cores int, p_ram_gb real
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    -- Text a student sends is bounded here: it is shown on every leaderboard.
    IF length(p_name) > 64 OR length(p_hostname) > 255 OR length(p_device) > 16
       OR length(coalesce(p_gpu_name, '')) > 128 THEN
        RAISE EXCEPTION 'worker name, hostname, device or GPU name too long'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM runs WHERE id = p_run_id AND state = 'running') THEN
        RAISE EXCEPTION 'run % is not running', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF (SELECT count(*) FROM workers WHERE run_id = p_run_id AND role_name = session_user) >= 32
    THEN
        RAISE EXCEPTION 'role % already registered 32 workers in run %', session_user, p_run_id
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    INSERT INTO workers (run_id, name, hostname, device, gpu_name, gpu_vram_gb, cpu_cores,
                         ram_gb, role_name)
    VALUES (p_run_id, p_name, p_hostname, p_device, p_gpu_name, p_gpu_vram_gb, p_cpu_cores,
            p_ram_gb, session_user)
    RETURNING id INTO new_id;
    RETURN new_id;
END $$;

-- Take the lowest pending unit of the current version, or one whose leases have all expired (by
-- the database clock). FOR UPDATE SKIP LOCKED: concurrent claimers never wait for each other and
-- never take the same row; the row update re-checks the state under the lock.
CREATE FUNCTION worker_claim_unit(p_run_id bigint, p_worker_id bigint)
RETURNS TABLE (unit_id bigint, version int, unit_index int, device int, token uuid,
               expires_at timestamptz, backup boolean)
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_may_claim(p_worker_id);
    WITH run AS (
        SELECT id, version, lease_seconds FROM runs WHERE id = p_run_id AND state = 'running'
          AND NOT EXISTS (SELECT 1 FROM leases WHERE worker_id = p_worker_id
                          AND state = 'active' AND leases.expires_at > now())
    ), picked AS (
        SELECT u.id FROM work_units u JOIN run ON u.run_id = run.id AND u.version = run.version
        WHERE u.state = 'pending' OR (u.state = 'claimed' AND u.lease_expires_at < now())
        ORDER BY u.unit_index
        LIMIT 1
        FOR UPDATE OF u SKIP LOCKED
    ), claimed AS (
        UPDATE work_units u
        SET state = 'claimed', attempts = u.attempts + 1,
            lease_expires_at = now() + make_interval(secs => run.lease_seconds)
        FROM picked, run
        WHERE u.id = picked.id
        RETURNING u.id, u.version, u.unit_index, u.device, u.lease_expires_at
    ), expired AS (
        UPDATE leases SET state = 'expired', finished_at = now()
        WHERE leases.unit_id IN (SELECT id FROM claimed) AND state = 'active'
    ), lease AS (
        INSERT INTO leases (unit_id, worker_id, expires_at)
        SELECT id, p_worker_id, lease_expires_at FROM claimed
        RETURNING leases.token, leases.unit_id, leases.expires_at
    )
    SELECT claimed.id, claimed.version, claimed.unit_index, claimed.device, lease.token,
           lease.expires_at, false
    FROM claimed JOIN lease ON lease.unit_id = claimed.id;
$$;

-- Nothing is pending but the update still waits on a slow worker: hand one of its units to this
-- idle worker as well; the first valid result wins (see worker_submit_result).
CREATE FUNCTION worker_claim_backup_unit(p_run_id bigint, p_worker_id bigint)
RETURNS TABLE (unit_id bigint, version int, unit_index int, device int, token uuid,
               expires_at timestamptz, backup boolean)
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_may_claim(p_worker_id);
    WITH run AS (
        SELECT id, version, lease_seconds, max_backups FROM runs
        WHERE id = p_run_id AND state = 'running'
          AND NOT EXISTS (SELECT 1 FROM leases WHERE worker_id = p_worker_id
                          AND state = 'active' AND leases.expires_at > now())
    ), picked AS (
        SELECT u.id FROM work_units u JOIN run ON u.run_id = run.id AND u.version = run.version
        WHERE u.state = 'claimed' AND u.backups < run.max_backups
          -- only when no unit of this version waits for a first worker
          AND NOT EXISTS (SELECT 1 FROM work_units p
                          WHERE p.run_id = run.id AND p.version = run.version
                            AND (p.state = 'pending'
                                 OR (p.state = 'claimed' AND p.lease_expires_at < now())))
        ORDER BY u.backups, u.unit_index
        LIMIT 1
        FOR UPDATE OF u SKIP LOCKED
    ), claimed AS (
        UPDATE work_units u
        SET backups = u.backups + 1, attempts = u.attempts + 1,
            lease_expires_at = greatest(u.lease_expires_at,
                                        now() + make_interval(secs => run.lease_seconds))
        FROM picked, run
        WHERE u.id = picked.id AND u.state = 'claimed'
        RETURNING u.id, u.version, u.unit_index, u.device
    ), lease AS (
        INSERT INTO leases (unit_id, worker_id, expires_at)
        SELECT claimed.id, p_worker_id, now() + make_interval(secs => run.lease_seconds)
        FROM claimed, run
        RETURNING leases.token, leases.unit_id, leases.expires_at
    )
    SELECT claimed.id, claimed.version, claimed.unit_index, claimed.device, lease.token,
           lease.expires_at, true
    FROM claimed JOIN lease ON lease.unit_id = claimed.id;
$$;

-- Upload and completion in one statement, accepted only while the lease is live and the unit
-- not done. FOR UPDATE OF u serialises competing copies of a unit: the loser waits, re-checks
-- u.state under the lock, finds 'done' and inserts nothing. Late, duplicate and foreign uploads
-- therefore return no row, and the results primary key is a second guard.
CREATE FUNCTION worker_submit_result(
    p_run_id bigint, p_worker_id bigint, p_token uuid, p_images int, p_payload bytea,
    p_device_state bytea, p_compute_seconds real
) RETURNS TABLE (unit_id bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
    WITH lease AS (
        SELECT l.token, u.id AS unit_id, u.version, u.unit_index
        FROM leases l JOIN work_units u ON u.id = l.unit_id JOIN runs r ON r.id = u.run_id
        WHERE l.token = p_token AND l.worker_id = p_worker_id AND u.run_id = p_run_id
          AND l.state = 'active' AND l.expires_at > now() AND u.state = 'claimed'
          AND (r.max_upload_bytes IS NULL
               OR octet_length(p_payload) + coalesce(octet_length(p_device_state), 0)
                  <= r.max_upload_bytes)
        FOR UPDATE OF u
    ), done AS (
        UPDATE work_units u SET state = 'done', lease_expires_at = NULL
        FROM lease WHERE u.id = lease.unit_id
        RETURNING u.id, u.version, u.unit_index
    ), stored AS (
        INSERT INTO results (unit_id, run_id, version, unit_index, worker_id, images, payload,
                             device_state, compute_seconds)
        SELECT done.id, p_run_id, done.version, done.unit_index, p_worker_id, p_images,
               p_payload, p_device_state, p_compute_seconds
        FROM done
        RETURNING results.unit_id
    ), finished AS (
        UPDATE leases
        SET state = CASE WHEN leases.token = p_token THEN 'done' ELSE 'superseded' END,
            finished_at = now()
        WHERE leases.unit_id IN (SELECT stored.unit_id FROM stored) AND state = 'active'
    )
    SELECT stored.unit_id FROM stored;
$$;

-- Functions are executable by PUBLIC by default: only the roles granted below (students, by
-- `ganfriends students add`) and the owner may call these.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ganfriends FROM PUBLIC;
