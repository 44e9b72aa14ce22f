-- Orchestrations: stored definitions, versioned so that a run can pin the version it
-- started with.
--
-- Every update writes a new row in `orchestration_versions` and moves
-- `current_version`; versions are never changed by an update, only re-encrypted in
-- place by key rotation. Deleting an orchestration removes its `orchestrations` row
-- alone: the versions stay (there is deliberately no foreign key with a cascade) so
-- that runs of a deleted orchestration can still read what they execute.
CREATE TABLE orchestrations (
    -- A non-INTEGER PRIMARY KEY in SQLite accepts NULL unless told otherwise.
    id               TEXT    NOT NULL PRIMARY KEY,
    -- The version that reads and new runs use; 1 on creation, +1 on every update.
    current_version  INTEGER NOT NULL CHECK (current_version >= 1),
    -- RFC 3339 UTC with exactly six fractional digits, as in `functions`: text order
    -- is time order, which listing relies on.
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
) STRICT;

-- A rowid table rather than WITHOUT ROWID: definitions can be large, and SQLite
-- advises WITHOUT ROWID only for rows well under a page.
CREATE TABLE orchestration_versions (
    orchestration_id TEXT    NOT NULL,
    version          INTEGER NOT NULL CHECK (version >= 1),
    -- The definition as JSON text, opaque to the store. Secrets in it are encrypted
    -- blobs, never plaintext.
    definition       TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    -- Also the order in which key rotation walks every definition.
    PRIMARY KEY (orchestration_id, version)
) STRICT;
