-- Functions: uploaded Wasm components, addressed by functionId.
--
-- The component bytes live in the database rather than on disk so that every node
-- sharing a database sees the same functions; compiled artifacts are a per-node cache
-- keyed by sha256 and never stored here.
CREATE TABLE functions (
    id          TEXT        PRIMARY KEY,
    -- Starts at 1, +1 each time different bytes are uploaded; settings changes keep it.
    version     BIGINT      NOT NULL CHECK (version >= 1),
    -- Lowercase hex SHA-256 of `bytes`: an upload with the same hash changes nothing.
    sha256      TEXT        NOT NULL,
    size_bytes  BIGINT      NOT NULL CHECK (size_bytes >= 0),
    -- FunctionSettings; keys missing here take their defaults on read, so a new setting
    -- needs no data migration.
    settings    JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    -- Last, in the same order as the SQLite schema. PostgreSQL moves a large value out
    -- of line (TOAST), so queries that do not select it never read it.
    bytes       BYTEA       NOT NULL
);
