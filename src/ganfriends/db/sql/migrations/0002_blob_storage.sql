-- 0002: keep the blob tables from growing.
--
-- Every update replaces ~2x the model in weights and optimizer states and deletes K results of
-- the model's size: tens of MB of dead TOAST per update. Autovacuum's cost-based throttling cannot
-- keep up with that churn (measured: 4.8 GB after 140 updates of the 32x32 model), so the
-- coordinator vacuums these tables itself right after each publishing transaction (query
-- vacuum_blob_tables), when it knows the dead space exists; autovacuum stays off for them
-- (anti-wraparound vacuums still run).
--
-- STORAGE EXTERNAL: float tensors do not compress; skip PostgreSQL's compression attempt.

ALTER TABLE results ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE weights ALTER COLUMN generator SET STORAGE EXTERNAL;
ALTER TABLE weights ALTER COLUMN discriminator SET STORAGE EXTERNAL;
ALTER TABLE optimizer_states ALTER COLUMN generator SET STORAGE EXTERNAL;
ALTER TABLE optimizer_states ALTER COLUMN discriminator SET STORAGE EXTERNAL;

ALTER TABLE results SET (autovacuum_enabled = false, toast.autovacuum_enabled = false);
ALTER TABLE weights SET (autovacuum_enabled = false, toast.autovacuum_enabled = false);
ALTER TABLE optimizer_states SET (autovacuum_enabled = false, toast.autovacuum_enabled = false);
