-- 0004: sample-quality scores of a class run (ganfriends.evaluation), one row per scored version.

CREATE TABLE evaluations (
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    version     int NOT NULL,
    images_seen bigint NOT NULL,
    fid         double precision NOT NULL,
    kid_mean    double precision,
    kid_std     double precision,
    precision   double precision,
    recall      double precision,
    num_samples int NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, version)
);
