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

ALTER TABLE results DROP CONSTRAINT results_pkey;
ALTER TABLE results ADD PRIMARY KEY (unit_id, worker_id);

-- A mismatch between two valid copies is recorded beside the rejections (shown with them) but is
-- not one: it blames nobody in particular and does not count towards a unit's rejection cap.
ALTER TABLE rejections ADD COLUMN mismatch boolean NOT NULL DEFAULT false;
CREATE INDEX rejections_unit ON rejections (run_id, version, unit_index) WHERE NOT mismatch;

-- One lock order in every statement that touches both: the unit's row, then its leases.
-- worker_submit_result takes the unit (FOR UPDATE OF u) and then writes the lease; the heartbeat
-- and the release below used to write the lease first and the unit second, so a worker's
-- heartbeat thread and its own upload could each hold what the other waited for (a deadlock that
-- PostgreSQL breaks by aborting one of them after deadlock_timeout).

CREATE OR REPLACE FUNCTION worker_extend_leases(p_worker_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
BEGIN
    PERFORM worker_check(p_worker_id);
    PERFORM 1 FROM work_units u
    WHERE u.id IN (SELECT l.unit_id FROM leases l
                   WHERE l.worker_id = p_worker_id AND l.state = 'active'
                     AND l.expires_at > now())
    ORDER BY u.id
    FOR UPDATE OF u;
    -- An expired lease is not revived (its unit may already be someone else's).
    WITH extended AS (
        UPDATE leases l
        SET expires_at = now() + make_interval(secs => r.lease_seconds)
        FROM work_units u JOIN runs r ON r.id = u.run_id
        WHERE l.worker_id = p_worker_id AND l.state = 'active' AND l.expires_at > now()
          AND u.id = l.unit_id
        RETURNING l.unit_id, l.expires_at
    )
    UPDATE work_units u SET lease_expires_at = greatest(u.lease_expires_at, extended.expires_at)
    FROM extended WHERE u.id = extended.unit_id AND u.state = 'claimed';
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

-- Upload and completion in one statement, accepted only while the lease is live: a unit another
-- copy already completed still takes this worker's copy. FOR UPDATE OF u serialises the copies
-- of a unit; the primary key keeps one copy per worker; a lease uploads once (it is 'done'
-- after). Late, duplicate, oversized and foreign uploads return no row. An accepted one notifies
-- the coordinator (LISTEN ganfriends_results).
CREATE OR REPLACE FUNCTION worker_submit_result(
    p_run_id bigint, p_worker_id bigint, p_token uuid, p_images int, p_payload bytea,
    p_device_state bytea, p_compute_seconds real
) RETURNS TABLE (unit_id bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
    SELECT worker_check(p_worker_id);
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
    SELECT stored.unit_id FROM stored, LATERAL pg_notify('ganfriends_results', p_run_id::text);
$$;
