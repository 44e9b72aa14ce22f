-- Functions: uploaded Wasm components, addressed by functionId.
--
-- The component bytes live in the database rather than on disk so that every node
-- sharing a database sees the same functions; compiled artifacts are a per-node cache
-- keyed by sha256 and never stored here.
--
-- STRICT makes SQLite reject a value of the wrong type instead of silently storing it,
-- which keeps this schema as honest as the PostgreSQL one.
CREATE TABLE functions (
    -- A non-INTEGER PRIMARY KEY in SQLite accepts NULL unless told otherwise.
    id          TEXT    NOT NULL PRIMARY KEY,
    -- Starts at 1, +1 each time different bytes are uploaded; settings changes keep it.
    version     INTEGER NOT NULL CHECK (version >= 1),
    -- Lowercase hex SHA-256 of `bytes`: an upload with the same hash changes nothing.
    sha256      TEXT    NOT NULL,
    size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
    -- JSON of FunctionSettings; keys missing here take their defaults on read, so a new
    -- setting needs no data migration.
    settings    TEXT    NOT NULL,
    -- RFC 3339 UTC with exactly six fractional digits ("2025-01-02T03:04:05.000006Z"):
    -- fixed width, so text order is time order, and the same precision as PostgreSQL.
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    -- Last on purpose: SQLite reads a row's columns in order, so columns after a large
    -- blob cost a walk of its overflow pages. Listing functions never touches the bytes.
    -- (Columns added later by ALTER TABLE land after this one; prefer a side table for
    -- anything read on hot paths.)
    bytes       BLOB    NOT NULL
) STRICT;
