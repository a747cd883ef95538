-- The schema the migrations build (version 11), for a reader: tables, indexes, views,
-- functions and grants of schema ganfriends. Generated from the migrations by
--     python -m ganfriends.db.schema_dump
-- do not edit it by hand; the migrations (sql/migrations/) are what databases run.
-- tests/integration/test_db_schema.py loads it into an empty database and compares the
-- catalog with a migrated one's.

-- The functions come first: their bodies are checked when they run.
SET check_function_bodies = false;

-- SCHEMA ganfriends

CREATE SCHEMA ganfriends;

-- FUNCTION others_active(bigint, text)

CREATE FUNCTION ganfriends.others_active(p_run_id bigint, p_student text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT 1 FROM workers w JOIN runs r ON r.id = w.run_id
                   WHERE w.run_id = p_run_id AND w.student <> p_student
                     AND w.state = 'active'
                     AND w.last_heartbeat > now() - make_interval(secs => r.lease_seconds));
$$;

-- FUNCTION participant(bigint)

CREATE FUNCTION ganfriends.participant(p_worker_id bigint) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    SELECT CASE WHEN session_user = current_user THEN session_user || '/' || p_worker_id
                ELSE session_user END;
$$;

-- FUNCTION student_allowance(bigint, bigint)

CREATE FUNCTION ganfriends.student_allowance(p_run_id bigint, p_worker_id bigint) RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
DECLARE
    run record;
    me text := (SELECT student FROM workers WHERE id = p_worker_id);
    held int;
    held_here int;
    others int;
    units int;
BEGIN
    SELECT id, version, lease_seconds, max_units_per_claim INTO run
    FROM runs WHERE id = p_run_id;
    held := student_live_leases(p_run_id, me);
    SELECT count(*) INTO held_here
    FROM leases l JOIN workers w ON w.id = l.worker_id JOIN work_units u ON u.id = l.unit_id
    WHERE w.run_id = p_run_id AND w.student = me AND l.state = 'active'
      AND l.expires_at > now() AND u.version = run.version;
    SELECT count(DISTINCT w.student) INTO others FROM workers w
    WHERE w.run_id = p_run_id AND w.student <> me AND w.state = 'active'
      AND w.last_heartbeat > now() - make_interval(secs => run.lease_seconds);
    SELECT count(*) INTO units FROM work_units u
    WHERE u.run_id = p_run_id AND u.version = run.version;
    IF others = 0 THEN
        RETURN greatest(run.max_units_per_claim - held, 0);
    END IF;
    RETURN greatest(least(run.max_units_per_claim - held,
                          ceil(units::numeric / (others + 1))::int - held_here), 0);
END $$;

-- FUNCTION student_live_leases(bigint, text)

CREATE FUNCTION ganfriends.student_live_leases(p_run_id bigint, p_student text) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    SELECT count(*)::int FROM leases l JOIN workers w ON w.id = l.worker_id
    WHERE w.run_id = p_run_id AND w.student = p_student AND l.state = 'active'
      AND l.expires_at > now();
$$;

-- FUNCTION student_rejections(bigint, text)

CREATE FUNCTION ganfriends.student_rejections(p_run_id bigint, p_student text) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    WITH since AS (
        SELECT coalesce(max(pardoned_at), '-infinity') AS at FROM student_pardons p
        WHERE p.run_id = p_run_id AND p.student = p_student
    )
    SELECT ((SELECT count(*) FROM rejections j JOIN workers w ON w.id = j.worker_id, since
             WHERE j.run_id = p_run_id AND w.student = p_student AND NOT j.mismatch
               AND j.created_at > since.at)
          + (SELECT count(*) FROM leases l JOIN workers w ON w.id = l.worker_id
             JOIN runs r ON r.id = w.run_id, since
             WHERE w.run_id = p_run_id AND w.student = p_student
               AND (l.state = 'expired' OR (l.state = 'active' AND l.expires_at <= now()))
               AND l.expires_at >= l.claimed_at
                                   + make_interval(secs => r.lease_seconds * r.max_lease_factor)
               AND l.expires_at > since.at))::int;
$$;

-- FUNCTION student_timed_out(bigint, text)

CREATE FUNCTION ganfriends.student_timed_out(p_unit_id bigint, p_student text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT 1 FROM leases l JOIN workers w ON w.id = l.worker_id
                   WHERE l.unit_id = p_unit_id AND w.student = p_student
                     AND (l.state = 'expired'
                          OR (l.state = 'active' AND l.expires_at <= now())));
$$;

-- FUNCTION take_run_lock(bigint)

CREATE FUNCTION ganfriends.take_run_lock(p_run_id bigint) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
DECLARE
    held record;
    started timestamptz := (SELECT backend_start FROM pg_stat_activity
                            WHERE pid = pg_backend_pid());
BEGIN
    INSERT INTO run_locks (run_id) VALUES (p_run_id) ON CONFLICT (run_id) DO NOTHING;
    SELECT holder_pid, holder_started INTO held FROM run_locks WHERE run_id = p_run_id
    FOR UPDATE;
    IF held.holder_pid = pg_backend_pid() AND held.holder_started = started THEN
        RETURN true;
    END IF;
    IF held.holder_pid IS NOT NULL AND EXISTS (
        SELECT 1 FROM pg_stat_activity a WHERE a.pid = held.holder_pid
          AND (a.backend_start IS NULL OR a.backend_start = held.holder_started)) THEN
        RETURN false;
    END IF;
    UPDATE run_locks SET holder_pid = pg_backend_pid(), holder_started = started,
                         taken_at = now()
    WHERE run_id = p_run_id;
    RETURN true;
END $$;

-- FUNCTION worker_check(bigint)

CREATE FUNCTION ganfriends.worker_check(p_worker_id bigint) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM workers WHERE id = p_worker_id AND role_name = session_user) THEN
        RAISE EXCEPTION 'worker % is not one of yours', p_worker_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

-- FUNCTION worker_claim_backup_unit(bigint, bigint)

CREATE FUNCTION ganfriends.worker_claim_backup_unit(p_run_id bigint, p_worker_id bigint) RETURNS TABLE(unit_id bigint, version integer, unit_index integer, device integer, token uuid, expires_at timestamp with time zone, backup boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    me text;
    shared boolean;
BEGIN
    PERFORM worker_may_claim(p_worker_id);
    me := (SELECT w.student FROM workers w WHERE w.id = p_worker_id);
    shared := others_active(p_run_id, me);
    -- The fair share counts units; a backup of a unit is extra work, not a share: only the
    -- per-student cap on live leases applies to it.
    IF student_live_leases(p_run_id, me) >= (SELECT r.max_units_per_claim FROM runs r
                                             WHERE r.id = p_run_id) THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH run AS (
        SELECT r.id, r.version, r.lease_seconds, r.max_backups FROM runs r
        WHERE r.id = p_run_id AND r.state = 'running'
          AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.worker_id = p_worker_id
                          AND l.state = 'active' AND l.expires_at > now())
    ), copies AS (
        -- who holds each claimed unit of the version: live leases and stored copies
        SELECT u.id, count(DISTINCT h.student) AS holders, bool_or(h.student = me) AS mine
        FROM work_units u JOIN run ON u.run_id = run.id AND u.version = run.version
        JOIN LATERAL (
            SELECT w.student FROM leases l JOIN workers w ON w.id = l.worker_id
            WHERE l.unit_id = u.id AND l.state = 'active' AND l.expires_at > now()
            UNION ALL
            SELECT w.student FROM results s JOIN workers w ON w.id = s.worker_id
            WHERE s.unit_id = u.id
        ) h ON true
        WHERE u.state = 'claimed'
        GROUP BY u.id
    ), picked AS (
        SELECT u.id FROM work_units u JOIN copies c ON c.id = u.id, run
        WHERE u.state = 'claimed' AND NOT c.mine AND c.holders <= run.max_backups
          AND NOT (shared AND student_timed_out(u.id, me))
          -- only when no unit of this version waits for a first worker this student may take
          AND NOT EXISTS (SELECT 1 FROM work_units p
                          WHERE p.run_id = run.id AND p.version = run.version
                            AND (p.state = 'pending'
                                 OR (p.state = 'claimed' AND p.lease_expires_at < now()))
                            AND NOT (shared AND student_timed_out(p.id, me)))
        ORDER BY c.holders, u.unit_index
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
    SELECT claimed.id::bigint, claimed.version::int, claimed.unit_index::int,
           claimed.device::int, lease.token, lease.expires_at, true
    FROM claimed JOIN lease ON lease.unit_id = claimed.id;
END $$;

-- FUNCTION worker_claim_unit(bigint, bigint)

CREATE FUNCTION ganfriends.worker_claim_unit(p_run_id bigint, p_worker_id bigint) RETURNS TABLE(unit_id bigint, version integer, unit_index integer, device integer, token uuid, expires_at timestamp with time zone, backup boolean)
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    SELECT * FROM worker_claim_units(p_run_id, p_worker_id, 1);
$$;

-- FUNCTION worker_claim_units(bigint, bigint, integer)

CREATE FUNCTION ganfriends.worker_claim_units(p_run_id bigint, p_worker_id bigint, p_count integer) RETURNS TABLE(unit_id bigint, version integer, unit_index integer, device integer, token uuid, expires_at timestamp with time zone, backup boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    me text;
    shared boolean;
    wanted int;
BEGIN
    PERFORM worker_may_claim(p_worker_id);
    me := (SELECT w.student FROM workers w WHERE w.id = p_worker_id);
    shared := others_active(p_run_id, me);
    -- A variable, not a subquery in LIMIT: PostgreSQL cannot evaluate a LIMIT subquery in a
    -- statement whose data-modifying CTEs fire triggers (the leases' foreign keys).
    wanted := least((SELECT least(greatest(p_count, 1), r.max_units_per_claim)
                     FROM runs r WHERE r.id = p_run_id),
                    student_allowance(p_run_id, p_worker_id));
    RETURN QUERY
    WITH run AS (
        SELECT r.id, r.version, r.lease_seconds FROM runs r
        WHERE r.id = p_run_id AND r.state = 'running'
          AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.worker_id = p_worker_id
                          AND l.state = 'active' AND l.expires_at > now())
    ), picked AS (
        -- SKIP LOCKED: concurrent claimers never wait for each other and never take the same
        -- row; each takes the lowest units nobody else is taking.
        SELECT u.id FROM work_units u JOIN run ON u.run_id = run.id AND u.version = run.version
        WHERE (u.state = 'pending' OR (u.state = 'claimed' AND u.lease_expires_at < now()))
          AND NOT (shared AND student_timed_out(u.id, me))
        ORDER BY u.unit_index
        LIMIT wanted
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
    SELECT claimed.id::bigint, claimed.version::int, claimed.unit_index::int,
           claimed.device::int, lease.token, lease.expires_at, false
    FROM claimed JOIN lease ON lease.unit_id = claimed.id
    ORDER BY claimed.unit_index;
END $$;

-- FUNCTION worker_extend_leases(bigint)

CREATE FUNCTION ganfriends.worker_extend_leases(p_worker_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
BEGIN
    PERFORM worker_check(p_worker_id);
    IF (SELECT student_rejections(w.run_id, w.student) >= r.quarantine_after
        FROM workers w JOIN runs r ON r.id = w.run_id WHERE w.id = p_worker_id) THEN
        RETURN;
    END IF;
    PERFORM 1 FROM work_units u
    WHERE u.id IN (SELECT l.unit_id FROM leases l
                   WHERE l.worker_id = p_worker_id AND l.state = 'active'
                     AND l.expires_at > now())
    ORDER BY u.id
    FOR UPDATE OF u;
    WITH extended AS (
        UPDATE leases l
        SET expires_at = greatest(l.expires_at, least(
                now() + make_interval(secs => r.lease_seconds),
                l.claimed_at + make_interval(secs => r.lease_seconds * r.max_lease_factor)))
        FROM work_units u JOIN runs r ON r.id = u.run_id
        WHERE l.worker_id = p_worker_id AND l.state = 'active' AND l.expires_at > now()
          AND u.id = l.unit_id
        RETURNING l.unit_id, l.expires_at
    )
    UPDATE work_units u SET lease_expires_at = greatest(u.lease_expires_at, extended.expires_at)
    FROM extended WHERE u.id = extended.unit_id AND u.state = 'claimed';
END $$;

-- FUNCTION worker_heartbeat(bigint)

CREATE FUNCTION ganfriends.worker_heartbeat(p_worker_id bigint) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    SELECT worker_check(p_worker_id);
    UPDATE workers SET last_heartbeat = now(), state = 'active' WHERE id = p_worker_id;
$$;

-- FUNCTION worker_may_claim(bigint)

CREATE FUNCTION ganfriends.worker_may_claim(p_worker_id bigint) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
DECLARE
    w record;
BEGIN
    PERFORM worker_check(p_worker_id);
    SELECT wk.run_id, wk.student, r.quarantine_after INTO w
    FROM workers wk JOIN runs r ON r.id = wk.run_id WHERE wk.id = p_worker_id;
    IF student_rejections(w.run_id, w.student) >= w.quarantine_after THEN
        RAISE EXCEPTION '% is quarantined in run %: % strikes (rejected uploads, or units '
                        'held without uploading); see `ganfriends status`, the instructor '
                        'lifts it with `ganfriends students pardon`', w.student, w.run_id,
                        w.quarantine_after
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

-- FUNCTION worker_register(bigint, text, text, text, text, real, integer, real)

CREATE FUNCTION ganfriends.worker_register(p_run_id bigint, p_name text, p_hostname text, p_device text, p_gpu_name text, p_gpu_vram_gb real, p_cpu_cores integer, p_ram_gb real) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
DECLARE
    new_id bigint;
    run record;
    me text := CASE WHEN session_user = current_user THEN NULL ELSE session_user END;
BEGIN
    -- Text a student sends is bounded here: it is shown on every leaderboard.
    IF length(p_name) > 64 OR length(p_hostname) > 255 OR length(p_device) > 16
       OR length(coalesce(p_gpu_name, '')) > 128 THEN
        RAISE EXCEPTION 'worker name, hostname, device or GPU name too long'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    -- FOR UPDATE: concurrent registrations of one student are counted one after the other.
    SELECT id, lease_seconds, max_live_workers, quarantine_after INTO run
    FROM runs WHERE id = p_run_id AND state = 'running' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % is not running', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF me IS NOT NULL THEN
        IF student_rejections(p_run_id, me) >= run.quarantine_after THEN
            RAISE EXCEPTION '% is quarantined in run %: % strikes (rejected uploads, or '
                            'units held without uploading); the instructor lifts it with '
                            '`ganfriends students pardon`', me, p_run_id, run.quarantine_after
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF (SELECT count(*) FROM workers WHERE run_id = p_run_id AND student = me
            AND state = 'active'
            AND last_heartbeat > now() - make_interval(secs => run.lease_seconds))
           >= run.max_live_workers THEN
            RAISE EXCEPTION '% already has % live workers in run % (stop one first)',
                            me, run.max_live_workers, p_run_id
                USING ERRCODE = 'program_limit_exceeded';
        END IF;
    END IF;
    -- A bound on rows, not on restarts: a student restarting all day stays far below it.
    IF (SELECT count(*) FROM workers WHERE run_id = p_run_id AND role_name = session_user)
       >= 1000 THEN
        RAISE EXCEPTION 'role % already registered 1000 workers in run %', session_user,
                        p_run_id USING ERRCODE = 'program_limit_exceeded';
    END IF;
    INSERT INTO workers (run_id, name, hostname, device, gpu_name, gpu_vram_gb, cpu_cores,
                         ram_gb, role_name, student)
    VALUES (p_run_id, p_name, p_hostname, p_device, p_gpu_name, p_gpu_vram_gb, p_cpu_cores,
            p_ram_gb, session_user, coalesce(me, ''))
    RETURNING id INTO new_id;
    IF me IS NULL THEN
        UPDATE workers SET student = participant(new_id) WHERE id = new_id;
    END IF;
    RETURN new_id;
END $$;

-- FUNCTION worker_release_lease(uuid, bigint)

CREATE FUNCTION ganfriends.worker_release_lease(p_token uuid, p_worker_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
BEGIN
    PERFORM worker_check(p_worker_id);
    PERFORM 1 FROM work_units u
    WHERE u.id = (SELECT l.unit_id FROM leases l WHERE l.token = p_token
                    AND l.worker_id = p_worker_id AND l.state = 'active')
    FOR UPDATE OF u;
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
END $$;

-- FUNCTION worker_stop(bigint)

CREATE FUNCTION ganfriends.worker_stop(p_worker_id bigint) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
    SELECT worker_check(p_worker_id);
    UPDATE workers SET state = 'stopped', last_heartbeat = now() WHERE id = p_worker_id;
$$;

-- FUNCTION worker_submit_result(bigint, bigint, uuid, integer, bytea, bytea, real)

CREATE FUNCTION ganfriends.worker_submit_result(p_run_id bigint, p_worker_id bigint, p_token uuid, p_images integer, p_payload bytea, p_device_state bytea, p_compute_seconds real) RETURNS TABLE(unit_id bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ganfriends', 'pg_temp'
    AS $$
#variable_conflict use_column
BEGIN
    PERFORM worker_may_claim(p_worker_id);
    RETURN QUERY
    WITH lease AS (
        SELECT l.token, u.id AS unit_id, u.version, u.unit_index
        FROM leases l JOIN work_units u ON u.id = l.unit_id JOIN runs r ON r.id = u.run_id
        WHERE l.token = p_token AND l.worker_id = p_worker_id AND u.run_id = p_run_id
          AND l.state = 'active' AND l.expires_at > now() AND u.state IN ('claimed', 'done')
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
        ON CONFLICT ON CONSTRAINT results_pkey DO NOTHING
        RETURNING results.unit_id
    ), finished AS (
        UPDATE leases SET state = 'done', finished_at = now()
        WHERE leases.token = p_token AND leases.unit_id IN (SELECT stored.unit_id FROM stored)
    )
    -- Wakes the coordinator at commit (a hint: it also polls).
    SELECT stored.unit_id::bigint
    FROM stored, LATERAL pg_notify('ganfriends_results', p_run_id::text);
END $$;

-- TABLE device_states

CREATE TABLE ganfriends.device_states (
    run_id bigint NOT NULL,
    device integer NOT NULL,
    version integer NOT NULL,
    state bytea NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT device_states_device_check CHECK ((device >= 0))
)
WITH (autovacuum_enabled='false', toast.autovacuum_enabled='false');
ALTER TABLE ONLY ganfriends.device_states ALTER COLUMN state SET STORAGE EXTERNAL;

-- TABLE evaluations

CREATE TABLE ganfriends.evaluations (
    run_id bigint NOT NULL,
    version integer NOT NULL,
    images_seen bigint NOT NULL,
    fid double precision NOT NULL,
    kid_mean double precision,
    kid_std double precision,
    "precision" double precision,
    recall double precision,
    num_samples integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE leases

CREATE TABLE ganfriends.leases (
    token uuid DEFAULT gen_random_uuid() NOT NULL,
    unit_id bigint NOT NULL,
    worker_id bigint NOT NULL,
    state text DEFAULT 'active'::text NOT NULL,
    claimed_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT leases_state_check CHECK ((state = ANY (ARRAY['active'::text, 'done'::text, 'expired'::text, 'released'::text, 'superseded'::text])))
);

-- TABLE optimizer_states

CREATE TABLE ganfriends.optimizer_states (
    run_id bigint NOT NULL,
    version integer NOT NULL,
    generator bytea NOT NULL,
    discriminator bytea NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
)
WITH (autovacuum_enabled='false', toast.autovacuum_enabled='false');
ALTER TABLE ONLY ganfriends.optimizer_states ALTER COLUMN generator SET STORAGE EXTERNAL;
ALTER TABLE ONLY ganfriends.optimizer_states ALTER COLUMN discriminator SET STORAGE EXTERNAL;

-- TABLE results

CREATE TABLE ganfriends.results (
    unit_id bigint NOT NULL,
    run_id bigint NOT NULL,
    version integer NOT NULL,
    unit_index bigint NOT NULL,
    worker_id bigint NOT NULL,
    images integer NOT NULL,
    payload bytea NOT NULL,
    compute_seconds double precision,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    device_state bytea,
    CONSTRAINT results_images_check CHECK ((images > 0))
)
WITH (autovacuum_enabled='false', toast.autovacuum_enabled='false');
ALTER TABLE ONLY ganfriends.results ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE ONLY ganfriends.results ALTER COLUMN device_state SET STORAGE EXTERNAL;

-- VIEW pending_credit

CREATE VIEW ganfriends.pending_credit AS
 SELECT run_id,
    worker_id,
    (count(*))::integer AS units,
    sum(images) AS images
   FROM ganfriends.results
  GROUP BY run_id, worker_id;

-- TABLE rejections

CREATE TABLE ganfriends.rejections (
    id bigint NOT NULL,
    run_id bigint NOT NULL,
    worker_id bigint,
    version integer NOT NULL,
    unit_index bigint NOT NULL,
    reason text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    mismatch boolean DEFAULT false NOT NULL
);

-- SEQUENCE rejections_id_seq

CREATE SEQUENCE ganfriends.rejections_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE OWNED BY rejections_id_seq

ALTER SEQUENCE ganfriends.rejections_id_seq OWNED BY ganfriends.rejections.id;

-- TABLE run_locks

CREATE TABLE ganfriends.run_locks (
    run_id bigint NOT NULL,
    holder_pid integer,
    holder_started timestamp with time zone,
    taken_at timestamp with time zone
);

-- TABLE runs

CREATE TABLE ganfriends.runs (
    id bigint NOT NULL,
    name text NOT NULL,
    state text DEFAULT 'running'::text NOT NULL,
    config jsonb NOT NULL,
    model_config jsonb NOT NULL,
    fingerprint jsonb NOT NULL,
    lease_seconds double precision NOT NULL,
    max_backups integer DEFAULT 1 NOT NULL,
    version integer DEFAULT 0 NOT NULL,
    images_seen bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    mode text NOT NULL,
    plan jsonb NOT NULL,
    total_versions integer NOT NULL,
    max_upload_bytes bigint,
    max_units_per_claim integer DEFAULT 4 NOT NULL,
    max_live_workers integer DEFAULT 8 NOT NULL,
    max_lease_factor double precision DEFAULT 3 NOT NULL,
    quarantine_after integer DEFAULT 3 NOT NULL,
    CONSTRAINT runs_lease_seconds_check CHECK ((lease_seconds > (0)::double precision)),
    CONSTRAINT runs_max_backups_check CHECK ((max_backups >= 0)),
    CONSTRAINT runs_max_lease_factor_check CHECK ((max_lease_factor >= (1)::double precision)),
    CONSTRAINT runs_max_live_workers_check CHECK (((max_live_workers >= 1) AND (max_live_workers <= 1024))),
    CONSTRAINT runs_max_units_per_claim_check CHECK (((max_units_per_claim >= 1) AND (max_units_per_claim <= 64))),
    CONSTRAINT runs_mode_check CHECK ((mode = ANY (ARRAY['sync'::text, 'federated'::text, 'md-gan'::text]))),
    CONSTRAINT runs_quarantine_after_check CHECK ((quarantine_after >= 1)),
    CONSTRAINT runs_state_check CHECK ((state = ANY (ARRAY['running'::text, 'complete'::text, 'stopped'::text]))),
    CONSTRAINT runs_total_versions_check CHECK ((total_versions > 0))
);

-- SEQUENCE runs_id_seq

CREATE SEQUENCE ganfriends.runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE OWNED BY runs_id_seq

ALTER SEQUENCE ganfriends.runs_id_seq OWNED BY ganfriends.runs.id;

-- TABLE samples

CREATE TABLE ganfriends.samples (
    run_id bigint NOT NULL,
    version integer NOT NULL,
    png bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);
ALTER TABLE ONLY ganfriends.samples ALTER COLUMN png SET STORAGE EXTERNAL;

-- TABLE schema_functions

CREATE TABLE ganfriends.schema_functions (
    digest text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE schema_migrations

CREATE TABLE ganfriends.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE student_pardons

CREATE TABLE ganfriends.student_pardons (
    run_id bigint NOT NULL,
    student text NOT NULL,
    pardoned_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE workers

CREATE TABLE ganfriends.workers (
    id bigint NOT NULL,
    run_id bigint NOT NULL,
    name text NOT NULL,
    hostname text NOT NULL,
    device text NOT NULL,
    gpu_name text,
    gpu_vram_gb real,
    cpu_cores integer,
    ram_gb real,
    state text DEFAULT 'active'::text NOT NULL,
    units_done integer DEFAULT 0 NOT NULL,
    images_done bigint DEFAULT 0 NOT NULL,
    rejected integer DEFAULT 0 NOT NULL,
    last_heartbeat timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    role_name text DEFAULT SESSION_USER NOT NULL,
    student text NOT NULL,
    CONSTRAINT workers_state_check CHECK ((state = ANY (ARRAY['active'::text, 'stopped'::text])))
);

-- VIEW student_standing

CREATE VIEW ganfriends.student_standing AS
 SELECT w.run_id,
    w.student,
    (count(*))::integer AS workers,
    ganfriends.student_rejections(w.run_id, w.student) AS rejections,
    (ganfriends.student_rejections(w.run_id, w.student) >= r.quarantine_after) AS quarantined,
    ( SELECT (count(*))::integer AS count
           FROM (ganfriends.leases l
             JOIN ganfriends.workers o ON ((o.id = l.worker_id)))
          WHERE ((o.run_id = w.run_id) AND (o.student = w.student) AND ((l.state = 'expired'::text) OR ((l.state = 'active'::text) AND (l.expires_at <= now()))))) AS timed_out
   FROM (ganfriends.workers w
     JOIN ganfriends.runs r ON ((r.id = w.run_id)))
  GROUP BY w.run_id, w.student, r.quarantine_after;

-- TABLE updates

CREATE TABLE ganfriends.updates (
    run_id bigint NOT NULL,
    version integer NOT NULL,
    epoch double precision NOT NULL,
    images integer NOT NULL,
    images_seen bigint NOT NULL,
    d_loss double precision,
    g_loss double precision,
    d_real double precision,
    d_fake double precision,
    contributors integer NOT NULL,
    wait_seconds double precision,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    norms jsonb
);

-- TABLE version_inputs

CREATE TABLE ganfriends.version_inputs (
    run_id bigint NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    blob bytea NOT NULL
)
WITH (autovacuum_enabled='false', toast.autovacuum_enabled='false');
ALTER TABLE ONLY ganfriends.version_inputs ALTER COLUMN blob SET STORAGE EXTERNAL;

-- TABLE weights

CREATE TABLE ganfriends.weights (
    run_id bigint NOT NULL,
    version integer NOT NULL,
    generator bytea NOT NULL,
    discriminator bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
)
WITH (autovacuum_enabled='false', toast.autovacuum_enabled='false');
ALTER TABLE ONLY ganfriends.weights ALTER COLUMN generator SET STORAGE EXTERNAL;
ALTER TABLE ONLY ganfriends.weights ALTER COLUMN discriminator SET STORAGE EXTERNAL;

-- TABLE work_units

CREATE TABLE ganfriends.work_units (
    id bigint NOT NULL,
    run_id bigint NOT NULL,
    version integer NOT NULL,
    unit_index bigint NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    lease_expires_at timestamp with time zone,
    backups integer DEFAULT 0 NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    device integer,
    CONSTRAINT work_units_device_check CHECK ((device >= 0)),
    CONSTRAINT work_units_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'claimed'::text, 'done'::text])))
);

-- SEQUENCE work_units_id_seq

CREATE SEQUENCE ganfriends.work_units_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE OWNED BY work_units_id_seq

ALTER SEQUENCE ganfriends.work_units_id_seq OWNED BY ganfriends.work_units.id;

-- SEQUENCE workers_id_seq

CREATE SEQUENCE ganfriends.workers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE OWNED BY workers_id_seq

ALTER SEQUENCE ganfriends.workers_id_seq OWNED BY ganfriends.workers.id;

-- DEFAULT rejections id

ALTER TABLE ONLY ganfriends.rejections ALTER COLUMN id SET DEFAULT nextval('ganfriends.rejections_id_seq'::regclass);

-- DEFAULT runs id

ALTER TABLE ONLY ganfriends.runs ALTER COLUMN id SET DEFAULT nextval('ganfriends.runs_id_seq'::regclass);

-- DEFAULT work_units id

ALTER TABLE ONLY ganfriends.work_units ALTER COLUMN id SET DEFAULT nextval('ganfriends.work_units_id_seq'::regclass);

-- DEFAULT workers id

ALTER TABLE ONLY ganfriends.workers ALTER COLUMN id SET DEFAULT nextval('ganfriends.workers_id_seq'::regclass);

-- CONSTRAINT device_states device_states_pkey

ALTER TABLE ONLY ganfriends.device_states
    ADD CONSTRAINT device_states_pkey PRIMARY KEY (run_id, device);

-- CONSTRAINT evaluations evaluations_pkey

ALTER TABLE ONLY ganfriends.evaluations
    ADD CONSTRAINT evaluations_pkey PRIMARY KEY (run_id, version);

-- CONSTRAINT leases leases_pkey

ALTER TABLE ONLY ganfriends.leases
    ADD CONSTRAINT leases_pkey PRIMARY KEY (token);

-- CONSTRAINT optimizer_states optimizer_states_pkey

ALTER TABLE ONLY ganfriends.optimizer_states
    ADD CONSTRAINT optimizer_states_pkey PRIMARY KEY (run_id);

-- CONSTRAINT rejections rejections_pkey

ALTER TABLE ONLY ganfriends.rejections
    ADD CONSTRAINT rejections_pkey PRIMARY KEY (id);

-- CONSTRAINT results results_pkey

ALTER TABLE ONLY ganfriends.results
    ADD CONSTRAINT results_pkey PRIMARY KEY (unit_id, worker_id);

-- CONSTRAINT run_locks run_locks_pkey

ALTER TABLE ONLY ganfriends.run_locks
    ADD CONSTRAINT run_locks_pkey PRIMARY KEY (run_id);

-- CONSTRAINT runs runs_pkey

ALTER TABLE ONLY ganfriends.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);

-- CONSTRAINT samples samples_pkey

ALTER TABLE ONLY ganfriends.samples
    ADD CONSTRAINT samples_pkey PRIMARY KEY (run_id, version);

-- CONSTRAINT schema_migrations schema_migrations_pkey

ALTER TABLE ONLY ganfriends.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

-- CONSTRAINT student_pardons student_pardons_pkey

ALTER TABLE ONLY ganfriends.student_pardons
    ADD CONSTRAINT student_pardons_pkey PRIMARY KEY (run_id, student, pardoned_at);

-- CONSTRAINT updates updates_pkey

ALTER TABLE ONLY ganfriends.updates
    ADD CONSTRAINT updates_pkey PRIMARY KEY (run_id, version);

-- CONSTRAINT version_inputs version_inputs_pkey

ALTER TABLE ONLY ganfriends.version_inputs
    ADD CONSTRAINT version_inputs_pkey PRIMARY KEY (run_id, version, name);

-- CONSTRAINT weights weights_pkey

ALTER TABLE ONLY ganfriends.weights
    ADD CONSTRAINT weights_pkey PRIMARY KEY (run_id, version);

-- CONSTRAINT work_units work_units_pkey

ALTER TABLE ONLY ganfriends.work_units
    ADD CONSTRAINT work_units_pkey PRIMARY KEY (id);

-- CONSTRAINT work_units work_units_run_id_unit_index_key

ALTER TABLE ONLY ganfriends.work_units
    ADD CONSTRAINT work_units_run_id_unit_index_key UNIQUE (run_id, unit_index);

-- CONSTRAINT workers workers_pkey

ALTER TABLE ONLY ganfriends.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

-- INDEX leases_unit

CREATE INDEX leases_unit ON ganfriends.leases USING btree (unit_id) WHERE (state = 'active'::text);

-- INDEX leases_worker

CREATE INDEX leases_worker ON ganfriends.leases USING btree (worker_id) WHERE (state = 'active'::text);

-- INDEX rejections_unit

CREATE INDEX rejections_unit ON ganfriends.rejections USING btree (run_id, version, unit_index) WHERE (NOT mismatch);

-- INDEX results_version

CREATE INDEX results_version ON ganfriends.results USING btree (run_id, version, unit_index);

-- INDEX work_units_queue

CREATE INDEX work_units_queue ON ganfriends.work_units USING btree (run_id, version, state, unit_index);

-- INDEX workers_role

CREATE INDEX workers_role ON ganfriends.workers USING btree (role_name);

-- INDEX workers_run

CREATE INDEX workers_run ON ganfriends.workers USING btree (run_id, last_heartbeat);

-- INDEX workers_student

CREATE INDEX workers_student ON ganfriends.workers USING btree (run_id, student);

-- FK CONSTRAINT device_states device_states_run_id_fkey

ALTER TABLE ONLY ganfriends.device_states
    ADD CONSTRAINT device_states_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT evaluations evaluations_run_id_fkey

ALTER TABLE ONLY ganfriends.evaluations
    ADD CONSTRAINT evaluations_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT leases leases_unit_id_fkey

ALTER TABLE ONLY ganfriends.leases
    ADD CONSTRAINT leases_unit_id_fkey FOREIGN KEY (unit_id) REFERENCES ganfriends.work_units(id) ON DELETE CASCADE;

-- FK CONSTRAINT leases leases_worker_id_fkey

ALTER TABLE ONLY ganfriends.leases
    ADD CONSTRAINT leases_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES ganfriends.workers(id) ON DELETE CASCADE;

-- FK CONSTRAINT optimizer_states optimizer_states_run_id_fkey

ALTER TABLE ONLY ganfriends.optimizer_states
    ADD CONSTRAINT optimizer_states_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT rejections rejections_run_id_fkey

ALTER TABLE ONLY ganfriends.rejections
    ADD CONSTRAINT rejections_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT rejections rejections_worker_id_fkey

ALTER TABLE ONLY ganfriends.rejections
    ADD CONSTRAINT rejections_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES ganfriends.workers(id) ON DELETE SET NULL;

-- FK CONSTRAINT results results_run_id_fkey

ALTER TABLE ONLY ganfriends.results
    ADD CONSTRAINT results_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT results results_unit_id_fkey

ALTER TABLE ONLY ganfriends.results
    ADD CONSTRAINT results_unit_id_fkey FOREIGN KEY (unit_id) REFERENCES ganfriends.work_units(id) ON DELETE CASCADE;

-- FK CONSTRAINT results results_worker_id_fkey

ALTER TABLE ONLY ganfriends.results
    ADD CONSTRAINT results_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES ganfriends.workers(id) ON DELETE CASCADE;

-- FK CONSTRAINT run_locks run_locks_run_id_fkey

ALTER TABLE ONLY ganfriends.run_locks
    ADD CONSTRAINT run_locks_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT samples samples_run_id_fkey

ALTER TABLE ONLY ganfriends.samples
    ADD CONSTRAINT samples_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT student_pardons student_pardons_run_id_fkey

ALTER TABLE ONLY ganfriends.student_pardons
    ADD CONSTRAINT student_pardons_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT updates updates_run_id_fkey

ALTER TABLE ONLY ganfriends.updates
    ADD CONSTRAINT updates_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT version_inputs version_inputs_run_id_fkey

ALTER TABLE ONLY ganfriends.version_inputs
    ADD CONSTRAINT version_inputs_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT weights weights_run_id_fkey

ALTER TABLE ONLY ganfriends.weights
    ADD CONSTRAINT weights_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT work_units work_units_run_id_fkey

ALTER TABLE ONLY ganfriends.work_units
    ADD CONSTRAINT work_units_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- FK CONSTRAINT workers workers_run_id_fkey

ALTER TABLE ONLY ganfriends.workers
    ADD CONSTRAINT workers_run_id_fkey FOREIGN KEY (run_id) REFERENCES ganfriends.runs(id) ON DELETE CASCADE;

-- ACL FUNCTION others_active(p_run_id bigint, p_student text)

REVOKE ALL ON FUNCTION ganfriends.others_active(p_run_id bigint, p_student text) FROM PUBLIC;

-- ACL FUNCTION participant(p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.participant(p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION student_allowance(p_run_id bigint, p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.student_allowance(p_run_id bigint, p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION student_live_leases(p_run_id bigint, p_student text)

REVOKE ALL ON FUNCTION ganfriends.student_live_leases(p_run_id bigint, p_student text) FROM PUBLIC;

-- ACL FUNCTION student_rejections(p_run_id bigint, p_student text)

REVOKE ALL ON FUNCTION ganfriends.student_rejections(p_run_id bigint, p_student text) FROM PUBLIC;

-- ACL FUNCTION student_timed_out(p_unit_id bigint, p_student text)

REVOKE ALL ON FUNCTION ganfriends.student_timed_out(p_unit_id bigint, p_student text) FROM PUBLIC;

-- ACL FUNCTION take_run_lock(p_run_id bigint)

REVOKE ALL ON FUNCTION ganfriends.take_run_lock(p_run_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_check(p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_check(p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_claim_backup_unit(p_run_id bigint, p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_claim_backup_unit(p_run_id bigint, p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_claim_unit(p_run_id bigint, p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_claim_unit(p_run_id bigint, p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_claim_units(p_run_id bigint, p_worker_id bigint, p_count integer)

REVOKE ALL ON FUNCTION ganfriends.worker_claim_units(p_run_id bigint, p_worker_id bigint, p_count integer) FROM PUBLIC;

-- ACL FUNCTION worker_extend_leases(p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_extend_leases(p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_heartbeat(p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_heartbeat(p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_may_claim(p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_may_claim(p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_register(p_run_id bigint, p_name text, p_hostname text, p_device text, p_gpu_name text, p_gpu_vram_gb real, p_cpu_cores integer, p_ram_gb real)

REVOKE ALL ON FUNCTION ganfriends.worker_register(p_run_id bigint, p_name text, p_hostname text, p_device text, p_gpu_name text, p_gpu_vram_gb real, p_cpu_cores integer, p_ram_gb real) FROM PUBLIC;

-- ACL FUNCTION worker_release_lease(p_token uuid, p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_release_lease(p_token uuid, p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_stop(p_worker_id bigint)

REVOKE ALL ON FUNCTION ganfriends.worker_stop(p_worker_id bigint) FROM PUBLIC;

-- ACL FUNCTION worker_submit_result(p_run_id bigint, p_worker_id bigint, p_token uuid, p_images integer, p_payload bytea, p_device_state bytea, p_compute_seconds real)

REVOKE ALL ON FUNCTION ganfriends.worker_submit_result(p_run_id bigint, p_worker_id bigint, p_token uuid, p_images integer, p_payload bytea, p_device_state bytea, p_compute_seconds real) FROM PUBLIC;
