-- Statuses are the names of trellis-types' RunStatus and StepStatus enums; the store
-- binds them from the enums, and these constraints keep anything else out of the
-- tables (a test checks the lists against the enums).
--
-- SQLite cannot add a constraint to a table, so both tables are rebuilt. The order
-- matters with foreign keys on (migrations run inside a transaction, where the pragma
-- cannot be turned off): the new step table references the new run table, so
-- dropping the old run table cascades into nothing, and renaming the new run table
-- rewrites that reference to `runs`.
CREATE TABLE runs_checked (
    id                    TEXT    NOT NULL PRIMARY KEY,
    orchestration_id      TEXT    NOT NULL,
    orchestration_version INTEGER NOT NULL,
    status                TEXT    NOT NULL
        CHECK (status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled')),
    input                 TEXT    NOT NULL,
    error                 TEXT,
    current_step          TEXT,
    step_executions       INTEGER NOT NULL DEFAULT 0,
    due_at                TEXT,
    lease_owner           TEXT,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL
) STRICT;
INSERT INTO runs_checked SELECT * FROM runs;

CREATE TABLE run_steps_checked (
    run_id      TEXT    NOT NULL REFERENCES runs_checked (id) ON DELETE CASCADE,
    step_id     TEXT    NOT NULL,
    execution   INTEGER NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempts    INTEGER NOT NULL,
    output      TEXT,
    error       TEXT,
    logs        TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, step_id)
) STRICT;
INSERT INTO run_steps_checked SELECT * FROM run_steps;

DROP TABLE run_steps;
DROP TABLE runs;
ALTER TABLE runs_checked RENAME TO runs;
ALTER TABLE run_steps_checked RENAME TO run_steps;

CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX runs_by_orchestration ON runs (orchestration_id, created_at);
