-- Orchestrations: stored definitions, versioned so that a run can pin the version it
-- started with.
--
-- Every update writes a new row in `orchestration_versions` and moves
-- `current_version`; versions are never changed by an update, only re-encrypted in
-- place by key rotation. Deleting an orchestration removes its `orchestrations` row
-- alone: the versions stay (there is deliberately no foreign key with a cascade) so
-- that runs of a deleted orchestration can still read what they execute.
--
-- Ids use the "C" collation (byte order), as SQLite compares text, so that listing
-- and the keyset walk over versions order the same on both backends and whatever the
-- database's default collation.
CREATE TABLE orchestrations (
    id               TEXT COLLATE "C" PRIMARY KEY,
    -- The version that reads and new runs use; 1 on creation, +1 on every update.
    current_version  BIGINT      NOT NULL CHECK (current_version >= 1),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE orchestration_versions (
    orchestration_id TEXT COLLATE "C" NOT NULL,
    version          BIGINT      NOT NULL CHECK (version >= 1),
    -- The definition as JSON text, opaque to the store. Secrets in it are encrypted
    -- blobs, never plaintext. TEXT rather than JSONB: JSONB normalises whitespace and
    -- key order, and key rotation compares and swaps the exact text it read.
    definition       TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    -- Also the order in which key rotation walks every definition.
    PRIMARY KEY (orchestration_id, version)
);
