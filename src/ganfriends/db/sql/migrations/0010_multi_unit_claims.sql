-- 0010: a fast worker claims several units of a version at once and uploads them in one call.
--
-- A GPU computes a unit in well under a second, and then spends round trips on the claim and the
-- upload of each. Now one call claims up to N units (N asked by the worker, capped by the run's
-- max_units_per_claim, which the coordinator sets), and the worker uploads what it computed for
-- them in one round trip (worker_submit_result once per unit, pipelined by the client: a
-- function taking a bytea[] would cost the server a copy of every element). Each unit keeps its
-- own lease and its own result row, so nothing downstream changes:
-- every copy is validated, compared with other copies, credited and requeued on its own, and the
-- model is the same bits whoever claimed how many (results are never summed on a worker: float
-- addition is not associative, so a sum over a worker's units would make the model depend on
-- who claimed what, and a backup copy of one unit could not be compared with it).
--
-- The claim rules stay those of worker_claim_unit, which is now this function with N = 1: units
-- of the current version only, lowest unit_index first, pending or with every lease expired, and
-- no claim while the worker still holds a live lease (so a worker holds at most one claim's
-- units, at most max_units_per_claim of them).

ALTER TABLE runs ADD COLUMN max_units_per_claim int NOT NULL DEFAULT 4
    CHECK (max_units_per_claim BETWEEN 1 AND 64);

CREATE FUNCTION worker_claim_units(p_run_id bigint, p_worker_id bigint, p_count int)
RETURNS TABLE (unit_id bigint, version int, unit_index int, device int, token uuid,
               expires_at timestamptz, backup boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ganfriends, pg_temp AS $$
#variable_conflict use_column
DECLARE
    -- A variable, not a subquery in LIMIT: PostgreSQL cannot evaluate a LIMIT subquery in a
    -- statement whose data-modifying CTEs fire triggers (the leases' foreign keys).
    wanted int := (SELECT least(greatest(p_count, 1), r.max_units_per_claim)
                   FROM runs r WHERE r.id = p_run_id);
BEGIN
    PERFORM worker_may_claim(p_worker_id);
    RETURN QUERY
    WITH run AS (
        SELECT id, version, lease_seconds FROM runs WHERE id = p_run_id AND state = 'running'
          AND NOT EXISTS (SELECT 1 FROM leases WHERE worker_id = p_worker_id
                          AND state = 'active' AND leases.expires_at > now())
    ), picked AS (
        -- SKIP LOCKED: concurrent claimers never wait for each other and never take the same
        -- row; each takes the lowest units nobody else is taking.
        SELECT u.id FROM work_units u JOIN run ON u.run_id = run.id AND u.version = run.version
        WHERE u.state = 'pending' OR (u.state = 'claimed' AND u.lease_expires_at < now())
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
    -- The declared types of worker_claim_unit (a plpgsql result is not coerced as SQL's is).
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

REVOKE EXECUTE ON FUNCTION worker_claim_units(bigint, bigint, int) FROM PUBLIC;
