-- 0001: the initial ganfriends schema.
-- Each migration runs in one transaction with search_path=ganfriends,public; the runner creates
-- schema "ganfriends" and its own table ganfriends.schema_migrations before applying it.
--
-- Class training through a PostgreSQL work queue.
--
-- Everything is scoped by run_id: several runs share one database, and nothing of one run (units,
-- weights, gradients) can ever be picked up by another. Timestamps are written by the database
-- (now()), never by a client: leases are judged by one clock, not by each laptop's.

CREATE TABLE runs (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL,
    state            text NOT NULL DEFAULT 'running'
                     CHECK (state IN ('running', 'complete', 'stopped')),
    config           jsonb NOT NULL,           -- resolved Config.to_dict(), secrets masked
    model_config     jsonb NOT NULL,           -- ModelConfig.to_dict()
    fingerprint      jsonb NOT NULL,           -- dataset fingerprint every worker must match
    seed             bigint NOT NULL,
    epochs           int NOT NULL CHECK (epochs > 0),
    max_updates      int CHECK (max_updates > 0),   -- --max-iterations: stop after this many updates
    images_per_unit  int NOT NULL CHECK (images_per_unit > 0),
    units_per_update int NOT NULL CHECK (units_per_update > 0),
    micro_batch      int NOT NULL CHECK (micro_batch > 0),
    units_per_epoch  int NOT NULL CHECK (units_per_epoch > 0),
    total_units      bigint NOT NULL CHECK (total_units > 0),
    lease_seconds    double precision NOT NULL CHECK (lease_seconds > 0),
    max_backups      int NOT NULL DEFAULT 1 CHECK (max_backups >= 0),
    version          int NOT NULL DEFAULT 0,   -- published weights version = optimizer steps taken
    images_seen      bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);

-- Published weights: parameters and BatchNorm buffers of G and D as safetensors blobs. Only the
-- latest few versions and every Nth are kept (see prune_weights).
CREATE TABLE weights (
    run_id        bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version       int NOT NULL,
    generator     bytea NOT NULL,
    discriminator bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, version)
);

-- The coordinator's Adam states that go with weights `version`: one row per run, overwritten in
-- the same transaction that publishes the version, so a restart never pairs mismatched states.
CREATE TABLE optimizer_states (
    run_id        bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    version       int NOT NULL,
    generator     bytea NOT NULL,
    discriminator bytea NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workers (
    id             bigserial PRIMARY KEY,
    run_id         bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name           text NOT NULL,
    hostname       text NOT NULL,
    device         text NOT NULL,
    gpu_name       text,
    gpu_vram_gb    real,
    cpu_cores      int,
    ram_gb         real,
    state          text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'stopped')),
    units_done     int NOT NULL DEFAULT 0,     -- accepted units only, credited when consumed
    images_done    bigint NOT NULL DEFAULT 0,
    rejected       int NOT NULL DEFAULT 0,
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workers_run ON workers (run_id, last_heartbeat);

-- A work unit is a slice of one epoch's permutation: its images are derived from
-- (run seed, epoch, unit_index), so the row holds no copy of the dataset's indices.
-- epoch = unit_index / units_per_epoch. Rows exist only for the version being computed.
CREATE TABLE work_units (
    id               bigserial PRIMARY KEY,
    run_id           bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version          int NOT NULL,              -- the weights version it must be computed on
    unit_index       bigint NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done')),
    lease_expires_at timestamptz,               -- latest expiry over its active leases
    backups          int NOT NULL DEFAULT 0,    -- speculative copies handed out (stragglers)
    attempts         int NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, unit_index)
);
CREATE INDEX work_units_queue ON work_units (run_id, version, state, unit_index);

-- Who computes what. A unit has one lease per copy in flight; an upload needs a live lease.
CREATE TABLE leases (
    token       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    unit_id     bigint NOT NULL REFERENCES work_units (id) ON DELETE CASCADE,
    worker_id   bigint NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    state       text NOT NULL DEFAULT 'active'
                CHECK (state IN ('active', 'done', 'expired', 'released', 'superseded')),
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX leases_unit ON leases (unit_id) WHERE state = 'active';
CREATE INDEX leases_worker ON leases (worker_id) WHERE state = 'active';

-- One result per unit (the primary key makes duplicates impossible): G and D gradients and BN
-- buffers in one safetensors blob, uploaded in the same transaction that completes the unit.
-- Deleted when the coordinator consumes them.
CREATE TABLE results (
    unit_id         bigint PRIMARY KEY REFERENCES work_units (id) ON DELETE CASCADE,
    run_id          bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version         int NOT NULL,
    unit_index      bigint NOT NULL,
    worker_id       bigint NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    images          int NOT NULL CHECK (images > 0),
    payload         bytea NOT NULL,
    compute_seconds double precision,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX results_version ON results (run_id, version, unit_index);

-- Uploads that failed validation, kept against their worker.
CREATE TABLE rejections (
    id         bigserial PRIMARY KEY,
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    worker_id  bigint REFERENCES workers (id) ON DELETE SET NULL,
    version    int NOT NULL,
    unit_index bigint NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Loss history: one row per optimizer step (= published version).
CREATE TABLE updates (
    run_id       bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version      int NOT NULL,                 -- the version this update produced
    epoch        double precision NOT NULL,    -- epochs completed, fractional
    images       int NOT NULL,
    images_seen  bigint NOT NULL,
    d_loss       double precision,
    g_loss       double precision,
    d_real       double precision,
    d_fake       double precision,
    contributors int NOT NULL,                 -- distinct workers whose units were used
    wait_seconds double precision,             -- from publishing the previous version to now
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, version)
);
