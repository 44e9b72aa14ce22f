-- Statuses are the names of trellis-types' RunStatus and StepStatus enums; the store
-- binds them from the enums, and these constraints keep anything else out of the
-- tables (a test checks the lists against the enums).
ALTER TABLE runs ADD CONSTRAINT runs_status_known
    CHECK (status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled'));
ALTER TABLE run_steps ADD CONSTRAINT run_steps_status_known
    CHECK (status IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'cancelled'));
