-- 0006: what a version publishes besides weights.
--
-- MD-GAN publishes generated batches X_1..X_k instead of the generator: one row per batch, so a
-- worker downloads only the two it reads (X_g and X_d: the paper's 2bd floats), never G.
-- Rows exist only for the version being computed: publishing v+1 deletes v's.

CREATE TABLE version_inputs (
    run_id  bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version int NOT NULL,
    name    text NOT NULL,        -- the tensor's name, e.g. "x.0"
    blob    bytea NOT NULL,       -- a safetensors blob holding that one tensor
    PRIMARY KEY (run_id, version, name)
);
ALTER TABLE version_inputs ALTER COLUMN blob SET STORAGE EXTERNAL;
ALTER TABLE version_inputs SET (autovacuum_enabled = false, toast.autovacuum_enabled = false);
