-- Runs: one execution of one orchestration version, and one record per step it
-- entered. The engine changes both only in single transactions fenced on the worker
-- that holds the run's lease (see host/src/engine/worker.rs).
CREATE TABLE runs (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    orchestration_id      TEXT COLLATE "C" NOT NULL,
    -- The definition version the run executes, whatever happens to the
    -- orchestration later (versions outlive updates and deletes).
    orchestration_version BIGINT      NOT NULL,
    -- pending | running | waiting | completed | failed | cancelled
    status                TEXT        NOT NULL,
    -- The run's input object as JSON text.
    input                 TEXT        NOT NULL,
    -- `{ code, message }` as JSON text once the run failed or was cancelled.
    error                 TEXT,
    -- The step the run is at: running, waiting on, or last finished.
    current_step          TEXT,
    -- Steps entered so far; caps loops, and numbers each step execution for its
    -- idempotency key.
    step_executions       BIGINT      NOT NULL DEFAULT 0,
    -- When a worker should next look at the run: now for a new or just-approved
    -- run, the end of a delay, an approval timeout or a retry backoff, or, while a
    -- worker holds the run, the expiry of its lease. NULL: nothing to do until
    -- someone acts (an approval without timeout) or ever (a finished run).
    due_at                TIMESTAMPTZ,
    -- The worker holding the run, if any; every worker write is fenced on it.
    lease_owner           TEXT,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

-- Claiming walks due runs in due order; finished runs and approvals without a
-- timeout have no due time and stay out of the index.
CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX runs_by_orchestration ON runs (orchestration_id, created_at);

CREATE TABLE run_steps (
    run_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id     TEXT COLLATE "C" NOT NULL,
    -- Which of the run's step executions this record is (a loop re-enters a step;
    -- the record keeps the latest).
    execution   BIGINT      NOT NULL,
    -- pending | running | waiting | succeeded | failed | skipped | cancelled
    status      TEXT        NOT NULL,
    attempts    BIGINT      NOT NULL,
    -- JSON text, already redacted: no decrypted value is ever stored.
    output      TEXT,
    error       TEXT,
    logs        TEXT,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, step_id)
);
