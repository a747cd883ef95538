-- The functions of schema ganfriends, and the view that calls them, in their current form.
--
-- Numbered migrations (migrations/NNNN_*.sql) change tables; this file holds the code that runs
-- on them. ganfriends.db.migrations applies it after the numbered files, under the same lock,
-- whenever its text differs from the one last applied (schema_functions records a digest), so a
-- database at any version ends with exactly these definitions. Until 0011 the migrations
-- carried the functions themselves (0007 introduced them; 0008, 0010 and 0011 re-created them
-- whole): a database migrated then holds the same definitions once this file has run.
--
-- Every statement must run on a database that already has them: CREATE OR REPLACE. That cannot
-- change a function's arguments or result type, nor drop a view's column: for such a change,
-- put `DROP FUNCTION IF EXISTS name(old argument types);` (or DROP VIEW) just above the new
-- definition, and re-run `ganfriends students` grants (admin.sql) for a new signature.
-- SQL-language bodies are checked when created: a function comes after those it calls.
--
-- Why functions: everything a worker writes goes through them, so that a student's role needs
-- no write privilege on any table (see migrations 0007 and 0011 for the reasoning and the
-- limits they enforce).

-- ============================== Who may act: a worker's owner, a student's standing and allowance

-- Raise unless the calling role registered this worker.
CREATE OR REPLACE FUNCTION worker_check(p_worker_id bigint) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM workers WHERE id = p_worker_id AND role_name = session_user) THEN
        RAISE EXCEPTION 'worker % is not one of yours', p_worker_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

-- The participant behind the calling session's new worker: see migration 0011's header.
CREATE OR REPLACE FUNCTION participant(p_worker_id bigint) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT CASE WHEN session_user = current_user THEN session_user || '/' || p_worker_id
                ELSE session_user END;
$$;

-- A student's strikes since their last pardon: rejected copies, and leases they held to the
-- bound without ever uploading (heartbeating a unit they never compute is hoarding: with
-- backups off it would delay every version by the bound). A lease that merely expired (a laptop
-- closed mid-unit) is shown in student_standing but is no strike.
CREATE OR REPLACE FUNCTION student_rejections(p_run_id bigint, p_student text) RETURNS int
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

-- Per student of each run: what the instructor (status, students list, dashboard) shows.
-- Runs with its owner's rights, so students see who is quarantined without reading leases.
-- Strikes are student_rejections' (a view's functions run with the rights of whoever reads it:
-- admin.sql grants students EXECUTE on it, which reveals no more than this view does).
CREATE OR REPLACE VIEW student_standing AS
SELECT w.run_id, w.student, count(*)::int AS workers,
       student_rejections(w.run_id, w.student) AS rejections,
       student_rejections(w.run_id, w.student) >= r.quarantine_after AS quarantined,
       (SELECT count(*)::int FROM leases l JOIN workers o ON o.id = l.worker_id
        WHERE o.run_id = w.run_id AND o.student = w.student
          AND (l.state = 'expired' OR (l.state = 'active' AND l.expires_at <= now())))
           AS timed_out
FROM workers w JOIN runs r ON r.id = w.run_id
GROUP BY w.run_id, w.student, r.quarantine_after;

-- Live leases a student holds across all their workers of a run.
CREATE OR REPLACE FUNCTION student_live_leases(p_run_id bigint, p_student text) RETURNS int
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT count(*)::int FROM leases l JOIN workers w ON w.id = l.worker_id
    WHERE w.run_id = p_run_id AND w.student = p_student AND l.state = 'active'
      AND l.expires_at > now();
$$;

-- How many more live leases the caller's student may take now in the current version: the
-- per-student cap less what they hold, and, while other participants are active, no more than
-- a fair share of the version's units (so one student cannot hold a whole round).
CREATE OR REPLACE FUNCTION student_allowance(p_run_id bigint, p_worker_id bigint) RETURNS int
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

-- Units the caller's student let time out (or whose lease ran past its bound): not theirs again
-- while another participant is active. A given-back (released) unit may be taken again.
CREATE OR REPLACE FUNCTION student_timed_out(p_unit_id bigint, p_student text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM leases l JOIN workers w ON w.id = l.worker_id
                   WHERE l.unit_id = p_unit_id AND w.student = p_student
                     AND (l.state = 'expired'
                          OR (l.state = 'active' AND l.expires_at <= now())));
$$;

CREATE OR REPLACE FUNCTION others_active(p_run_id bigint, p_student text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM workers w JOIN runs r ON r.id = w.run_id
                   WHERE w.run_id = p_run_id AND w.student <> p_student
                     AND w.state = 'active'
                     AND w.last_heartbeat > now() - make_interval(secs => r.lease_seconds));
$$;

-- Raise unless the caller's worker may take new work: registered by the caller and not
-- quarantined.
CREATE OR REPLACE FUNCTION worker_may_claim(p_worker_id bigint) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

-- ============================================== Which ganfriends a run accepts (migration 0013)

-- A release ('0.10.2') as numbers, trailing zeros dropped: '0.10' > '0.9' and '0.1' = '0.1.0',
-- which text comparison gets wrong. NULL for anything else (a student's text, a dev suffix).
CREATE OR REPLACE FUNCTION release_parts(p_version text) RETURNS int[]
LANGUAGE sql IMMUTABLE SET search_path = ganfriends, pg_temp AS $$
    SELECT CASE WHEN p_version ~ '^[0-9]{1,9}(\.[0-9]{1,9}){0,5}$'
                THEN string_to_array(regexp_replace(p_version, '(\.0+)+$', ''), '.')::int[] END;
$$;

-- The line refusing a worker of release p_version to a run that needs p_minimum, NULL when it
-- may join. NULL for p_version (nothing declared, or not a release) compares as unknown: refused.
-- worker_register raises it; a worker asks it first, before it spends minutes loading its data.
CREATE OR REPLACE FUNCTION version_refusal(p_minimum text, p_version text) RETURNS text
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT CASE WHEN NOT coalesce(release_parts(p_version) >= release_parts(p_minimum), false)
                THEN format('this run needs ganfriends >= %s: pip install -U ''ganfriends>=%s''',
                            p_minimum, p_minimum) END;
$$;

-- ================================================= A worker's life: registration, heartbeat, stop

CREATE OR REPLACE FUNCTION worker_register(
    p_run_id bigint, p_name text, p_hostname text, p_device text, p_gpu_name text,
    p_gpu_vram_gb real, p_cpu_cores int, p_ram_gb real, p_version text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
DECLARE
    new_id bigint;
    run record;
    refusal text;
    me text := CASE WHEN session_user = current_user THEN NULL ELSE session_user END;
BEGIN
    -- Text a student sends is bounded here: it is shown on every leaderboard.
    IF length(p_name) > 64 OR length(p_hostname) > 255 OR length(p_device) > 16
       OR length(coalesce(p_gpu_name, '')) > 128 THEN
        RAISE EXCEPTION 'worker name, hostname, device or GPU name too long'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    -- FOR UPDATE: concurrent registrations of one student are counted one after the other.
    SELECT id, lease_seconds, max_live_workers, quarantine_after, min_worker_version INTO run
    FROM runs WHERE id = p_run_id AND state = 'running' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % is not running', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    -- Migration 0013: an older worker's uploads may not fit the run's format.
    refusal := version_refusal(run.min_worker_version, p_version);
    IF refusal IS NOT NULL THEN
        RAISE EXCEPTION '%', refusal USING ERRCODE = 'GF001';
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


-- What a worker of a ganfriends before migration 0013 calls: it declares no release, so the gate
-- refuses it with the line naming the release to install (dropping this signature would greet it
-- with "function does not exist" instead).
CREATE OR REPLACE FUNCTION worker_register(
    p_run_id bigint, p_name text, p_hostname text, p_device text, p_gpu_name text,
    p_gpu_vram_gb real, p_cpu_cores int, p_ram_gb real
) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_register(p_run_id, p_name, p_hostname, p_device, p_gpu_name, p_gpu_vram_gb,
                           p_cpu_cores, p_ram_gb, NULL::text);
$$;

CREATE OR REPLACE FUNCTION worker_heartbeat(p_worker_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
    UPDATE workers SET last_heartbeat = now(), state = 'active' WHERE id = p_worker_id;
$$;

-- Heartbeat: push back the expiry of this worker's live leases, but never past
-- max_lease_factor x the unit timeout after the claim: a worker that heartbeats without ever
-- uploading cannot keep a unit from the class. A quarantined student's leases are not extended
-- (they could not upload them): their units go back within a timeout.
CREATE OR REPLACE FUNCTION worker_extend_leases(p_worker_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

CREATE OR REPLACE FUNCTION worker_stop(p_worker_id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
    UPDATE workers SET state = 'stopped', last_heartbeat = now() WHERE id = p_worker_id;
$$;

-- =============================================== Claims: units leased to a worker, and given back

CREATE OR REPLACE FUNCTION worker_claim_units(p_run_id bigint, p_worker_id bigint, p_count int)
RETURNS TABLE (unit_id bigint, version int, unit_index int, device int, token uuid,
               expires_at timestamptz, backup boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

-- One claim rule, not two copies of it.
CREATE OR REPLACE FUNCTION worker_claim_unit(p_run_id bigint, p_worker_id bigint)
RETURNS TABLE (unit_id bigint, version int, unit_index int, device int, token uuid,
               expires_at timestamptz, backup boolean)
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT * FROM worker_claim_units(p_run_id, p_worker_id, 1);
$$;

-- Nothing this student may take is pending, but the version still waits on other copies: hand
-- this idle worker a copy of a unit it does not hold yet. Copies are counted live, by student:
-- at most 1 + max_backups distinct students hold a live lease or a stored copy of a unit, so a
-- student with many registrations cannot fill a unit's backup places, and places come back as
-- copies are given back, time out or are rejected.
CREATE OR REPLACE FUNCTION worker_claim_backup_unit(p_run_id bigint, p_worker_id bigint)
RETURNS TABLE (unit_id bigint, version int, unit_index int, device int, token uuid,
               expires_at timestamptz, backup boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

CREATE OR REPLACE FUNCTION worker_release_lease(p_token uuid, p_worker_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

-- ======================================================================================== Uploads

-- A quarantined student's uploads are not stored (their claims were refused from the moment
-- they were quarantined; this covers what they held then).
CREATE OR REPLACE FUNCTION worker_submit_result(
    p_run_id bigint, p_worker_id bigint, p_token uuid, p_images int, p_payload bytea,
    p_device_state bytea, p_compute_seconds real
) RETURNS TABLE (unit_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
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

-- ================================================================================ The coordinator

-- The coordinator's lock (queries.sql lock_run): true when the calling session holds it now.
-- The row lock serialises two coordinators taking it at once; the holder's session is judged
-- alive by pg_stat_activity (pid and start time; a start time hidden from this role counts as
-- alive: refusing is the safe side).
CREATE OR REPLACE FUNCTION take_run_lock(p_run_id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = ganfriends, pg_temp AS $$
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

-- Functions are executable by PUBLIC by default: only the roles granted in admin.sql (students,
-- by `ganfriends students add`) and the owner may call these.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ganfriends FROM PUBLIC;
