-- How a run is driven (io.slope.workflows.run.RunOptions), beside what it computes (the spec): chosen on submit
-- (POST /api/v1/runs, "options"), ranks changed on a live run by POST /api/v1/runs/{id}/ranks once its workflow has
-- accepted the change. The reconciler and retry-from-stage start a run again with these. NULL: the service's default
-- (RunOptions.DEFAULT), which is what every run stored before this migration had.
ALTER TABLE runs
    ADD COLUMN ranks                  integer CHECK (ranks BETWEEN 1 AND 64),   -- data-parallel ranks per chunk
    ADD COLUMN chunk_steps            integer CHECK (chunk_steps >= 1),         -- optimizer steps per chunk at most
    ADD COLUMN keep_last_checkpoints  integer CHECK (keep_last_checkpoints >= 1);
