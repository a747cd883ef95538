-- 0005: one transport, many rules.
--
-- A run records its mode (the rule that computes and combines units: ganfriends.rules) and that
-- mode's plan as data, instead of the sync mode's fixed plan columns. Runs created before this
-- migration are sync runs: their plan is rebuilt from those columns, so they still resume.
-- total_versions (versions published after version 0) is kept as a column so that status and
-- the dashboard need no rule to show progress.

ALTER TABLE runs ADD COLUMN mode text NOT NULL DEFAULT 'sync'
    CHECK (mode IN ('sync', 'federated', 'md-gan'));
ALTER TABLE runs ADD COLUMN plan jsonb;
ALTER TABLE runs ADD COLUMN total_versions int;

UPDATE runs SET
    plan = jsonb_build_object(
        'dataset_size', (fingerprint ->> 'size')::bigint,
        'seed', seed,
        'images_per_unit', images_per_unit,
        'units_per_update', units_per_update,
        'micro_batch', micro_batch,
        'epochs', epochs,
        'max_updates', max_updates),
    total_versions = least(ceil(total_units::numeric / units_per_update)::int,
                           coalesce(max_updates, 2147483647));

ALTER TABLE runs ALTER COLUMN plan SET NOT NULL;
ALTER TABLE runs ALTER COLUMN total_versions SET NOT NULL;
ALTER TABLE runs ADD CHECK (total_versions > 0);
ALTER TABLE runs ALTER COLUMN mode DROP DEFAULT;
ALTER TABLE runs DROP COLUMN seed, DROP COLUMN epochs, DROP COLUMN max_updates,
    DROP COLUMN images_per_unit, DROP COLUMN units_per_update, DROP COLUMN micro_batch,
    DROP COLUMN units_per_epoch, DROP COLUMN total_units;

-- Per-device modes (federated: device d's shard; MD-GAN: device d's discriminator): the device a
-- unit trains. NULL for modes without devices.
ALTER TABLE work_units ADD COLUMN device int CHECK (device >= 0);

-- A device's local state (its optimizer's moments), carried from one of its units to the next,
-- whichever worker computes them. Written only by the coordinator, in the transaction that
-- consumes the unit whose result carried it, so a crash never pairs a state with a round that
-- was not published.
CREATE TABLE device_states (
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    device     int NOT NULL CHECK (device >= 0),
    version    int NOT NULL,                  -- the version whose units produced it
    state      bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, device)
);
ALTER TABLE results ADD COLUMN device_state bytea;

-- Same blob policy as migration 0002: no compression attempt on float tensors, vacuumed by the
-- coordinator after each publish.
ALTER TABLE device_states ALTER COLUMN state SET STORAGE EXTERNAL;
ALTER TABLE results ALTER COLUMN device_state SET STORAGE EXTERNAL;
ALTER TABLE device_states SET (autovacuum_enabled = false, toast.autovacuum_enabled = false);
