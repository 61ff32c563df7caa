-- The run catalogue: Postgres is the system of record for runs (the API lists from here, never from Temporal
-- visibility) and the arbiter of which checkpoint is a run's latest (ARCHITECTURE.md §2, §3).

-- Bearer tokens of the REST API (issue 7): only a SHA-256 of the token is stored.
CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner         text        NOT NULL CHECK (owner <> ''),
    token_sha256  text        NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    admin         boolean     NOT NULL DEFAULT false,
    description   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_owner ON api_tokens (owner);

-- Corpora uploaded through the API (POST /api/v1/datasets), stored as one object each; usable by id in a spec.
CREATE TABLE corpora (
    id          text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),  -- sha256 of the content
    owner       text        NOT NULL CHECK (owner <> ''),
    object_key  text        NOT NULL,
    bytes       bigint      NOT NULL CHECK (bytes >= 0),
    filename    text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX corpora_owner ON corpora (owner, created_at DESC);

-- Prepared token shards, content addressed: id = sha256 over (corpus content, tokenizer, split, shard size, format).
CREATE TABLE datasets (
    id                 text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    prefix             text        NOT NULL,          -- s3 key prefix ending in '/'
    corpus_sha256      text        NOT NULL,
    tokenizer          text        NOT NULL,
    vocab_size         integer     NOT NULL CHECK (vocab_size > 0),
    val_fraction       double precision NOT NULL CHECK (val_fraction >= 0 AND val_fraction < 1),
    train_tokens       bigint      NOT NULL CHECK (train_tokens > 0),
    validation_tokens  bigint      NOT NULL CHECK (validation_tokens >= 0),
    manifest           jsonb       NOT NULL,          -- dataset.json as written, with every shard's sha256
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runs (
    id                     uuid        PRIMARY KEY,
    owner                  text        NOT NULL CHECK (owner <> ''),
    name                   text        NOT NULL,
    spec                   jsonb       NOT NULL,      -- the resolved RunSpec, as the spec codec writes it
    workflow_id            text        NOT NULL UNIQUE,
    status                 text        NOT NULL DEFAULT 'QUEUED'
        CHECK (status IN ('QUEUED', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    stage                  text
        CHECK (stage IN ('prepareData', 'sparsePhase', 'adapterPhase', 'merge', 'eval', 'export', 'finalize')),
    error                  text,
    dataset_id             text        REFERENCES datasets (id),
    total_steps            integer     NOT NULL CHECK (total_steps > 0),
    steps_done             integer     NOT NULL DEFAULT 0 CHECK (steps_done >= 0),
    -- The latest committed checkpoint. Moved only by a conditional UPDATE (... WHERE latest_step < :step), so a
    -- stale attempt can never move it back. -1: none yet.
    latest_step            bigint      NOT NULL DEFAULT -1 CHECK (latest_step >= -1),
    latest_attempt         text,
    latest_checkpoint_key  text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    started_at             timestamptz,
    finished_at            timestamptz,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')) = (finished_at IS NOT NULL)),
    CHECK (status <> 'FAILED' OR error IS NOT NULL),
    CHECK ((latest_step = -1) = (latest_checkpoint_key IS NULL))
);
-- GET /runs: the owner's runs newest first (keyset paging on (created_at, id)), optionally by status.
CREATE INDEX runs_owner_created ON runs (owner, created_at DESC, id DESC);
CREATE INDEX runs_owner_status_created ON runs (owner, status, created_at DESC, id DESC);
-- Admins list every run; the reconciler looks for unfinished ones.
CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('QUEUED', 'RUNNING', 'PAUSED');

-- What each completed stage produced (small JSON records of keys and numbers), so a retry from a later stage
-- can pass them to the new workflow run.
CREATE TABLE stage_results (
    run_id       uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stage        text        NOT NULL
        CHECK (stage IN ('prepareData', 'sparsePhase', 'adapterPhase', 'merge', 'eval', 'export', 'finalize')),
    result       jsonb       NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, stage)
);

-- One row per optimizer step (the loss curve). Written in batches with ON CONFLICT DO NOTHING: a retried chunk
-- replays steps that are already there, and the engine is deterministic, so the first row written is right.
CREATE TABLE progress_samples (
    run_id             uuid             NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step               integer          NOT NULL CHECK (step >= 1),
    loss               double precision NOT NULL,
    lr                 double precision NOT NULL,
    tokens             bigint           NOT NULL CHECK (tokens >= 0),
    tokens_per_second  double precision NOT NULL CHECK (tokens_per_second >= 0),
    recorded_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);

-- Committed checkpoints. A row exists only for a checkpoint whose COMMIT object exists; GC deletes the objects
-- first and the row second, so a row may briefly outlive its objects but never the reverse.
CREATE TABLE checkpoints (
    run_id           uuid             NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step             bigint           NOT NULL CHECK (step >= 0),
    object_prefix    text             NOT NULL,     -- ends in '/'; holds the shards, manifest.json and COMMIT
    writer_attempt   text             NOT NULL,
    manifest_sha256  text             NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    shards           jsonb            NOT NULL,     -- [{file, bytes, sha256}]
    bytes            bigint           NOT NULL CHECK (bytes >= 0),
    val_loss         double precision,
    pinned           boolean          NOT NULL DEFAULT false,
    committed_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);
CREATE INDEX checkpoints_best ON checkpoints (run_id, val_loss) WHERE val_loss IS NOT NULL;

-- Validation results: during training (name val_loss) and the final four evaluations.
CREATE TABLE eval_results (
    run_id       uuid             NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step         integer          NOT NULL CHECK (step >= 0),
    name         text             NOT NULL CHECK (name <> ''),
    value        double precision NOT NULL,
    recorded_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step, name)
);

-- Files a run produced (hf/ and slope/ exports), one row per object, with the checksum the manifest records.
CREATE TABLE artifacts (
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path        text        NOT NULL CHECK (path <> ''),   -- e.g. hf/model.safetensors
    kind        text        NOT NULL CHECK (kind IN ('hf', 'slope', 'report')),
    object_key  text        NOT NULL UNIQUE,
    bytes       bigint      NOT NULL CHECK (bytes >= 0),
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, path)
);

-- What happened to a run, for people: stage transitions, checkpoint fallbacks, worker changes, errors.
CREATE TABLE run_events (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id   uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT now(),
    level    text        NOT NULL CHECK (level IN ('INFO', 'WARN', 'ERROR')),
    stage    text,
    message  text        NOT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, id);
