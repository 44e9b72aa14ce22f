-- Runs: one execution of one orchestration version, and one record per step it
-- entered. The engine changes both only in single transactions fenced on the worker
-- that holds the run's lease (see host/src/engine/worker.rs). Column meanings are
-- documented in the PostgreSQL migration of the same name.
--
-- Timestamps are fixed-width RFC 3339 UTC text (as in `functions`), so text order is
-- time order: claiming compares `due_at` as text.
CREATE TABLE runs (
    id                    TEXT    NOT NULL PRIMARY KEY,
    orchestration_id      TEXT    NOT NULL,
    orchestration_version INTEGER NOT NULL,
    status                TEXT    NOT NULL,
    input                 TEXT    NOT NULL,
    error                 TEXT,
    current_step          TEXT,
    step_executions       INTEGER NOT NULL DEFAULT 0,
    due_at                TEXT,
    lease_owner           TEXT,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL
) STRICT;

CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX runs_by_orchestration ON runs (orchestration_id, created_at);

CREATE TABLE run_steps (
    run_id      TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT    NOT NULL,
    execution   INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    output      TEXT,
    error       TEXT,
    logs        TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, step_id)
) STRICT;
