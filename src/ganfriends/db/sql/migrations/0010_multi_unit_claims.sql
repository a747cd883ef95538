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

-- worker_claim_units, and worker_claim_unit as that function with N = 1, live in
-- ../functions.sql, in their current form.

ALTER TABLE runs ADD COLUMN max_units_per_claim int NOT NULL DEFAULT 4
    CHECK (max_units_per_claim BETWEEN 1 AND 64);
