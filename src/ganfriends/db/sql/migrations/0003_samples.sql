-- 0003: sample grids in the database, for the dashboard.
--
-- The coordinator stores every grid it writes (the same PNG as outputs/samples/), so anyone who
-- reaches the database sees them, not only the coordinator's machine. All are kept: a 64-image
-- grid is 30-100 KB, a few MB for a whole run.
--
-- STORAGE EXTERNAL: PNG is already compressed; skip PostgreSQL's compression attempt.

CREATE TABLE samples (
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version    int NOT NULL,                  -- the weights version that drew the grid
    png        bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, version)
);
ALTER TABLE samples ALTER COLUMN png SET STORAGE EXTERNAL;
