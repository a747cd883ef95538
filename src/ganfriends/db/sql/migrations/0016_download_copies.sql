-- 0016: the copy of each published network that workers download (issue 22, --download-dtype).
--
-- A run may publish its weights for workers rounded to bfloat16 or int8 (stochastic rounding,
-- ganfriends.compression.download_copy) while the coordinator keeps them in float32: with local
-- steps the download is most of what a worker moves, and a unit's change is taken from whatever
-- weights it started from, so the rounding's error is not carried into the model. The float32
-- blobs stay where they were (a restarted coordinator, the showcase and `export` read them); the
-- copies are NULL for a float32 run, which downloads the float32 blobs as before.
--
-- The digests (migration 0014) become those of what a worker downloads, so changed-only
-- downloads keep working on the copies: the copy of an unchanged network is the same bytes (its
-- rounding is keyed by the network's content), so its digest is too. A generated column's
-- expression cannot be altered in place before PostgreSQL 17: drop and add them again.
ALTER TABLE weights
    ADD COLUMN generator_download bytea,
    ADD COLUMN discriminator_download bytea;
ALTER TABLE weights ALTER COLUMN generator_download SET STORAGE EXTERNAL;
ALTER TABLE weights ALTER COLUMN discriminator_download SET STORAGE EXTERNAL;
ALTER TABLE weights
    DROP COLUMN generator_sha256,
    DROP COLUMN discriminator_sha256;
ALTER TABLE weights
    ADD COLUMN generator_sha256 bytea
        GENERATED ALWAYS AS (sha256(COALESCE(generator_download, generator))) STORED,
    ADD COLUMN discriminator_sha256 bytea
        GENERATED ALWAYS AS (sha256(COALESCE(discriminator_download, discriminator))) STORED;
