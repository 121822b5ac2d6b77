-- Issue 5: the history of runs, for `show`, `stats` and metrics.
-- Seconds from when the job was due to when its latest run started (set by the claim).
ALTER TABLE jobs ADD COLUMN waited double precision;
-- One row per finished run: recorded with the outcome (or when the lease expired: 'lost').
CREATE TABLE job_runs (
    id          bigserial PRIMARY KEY,
    job_seq     bigint           NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    attempt     integer          NOT NULL,
    queue       text             NOT NULL,
    worker_id   text,
    started_at  double precision NOT NULL,
    finished_at double precision NOT NULL,
    waited      double precision,
    outcome     text             NOT NULL,  -- completed, failed, dead, canceled or lost
    exit_code   integer,
    error       text
);
CREATE INDEX job_runs_job ON job_runs (job_seq);
CREATE INDEX job_runs_finished ON job_runs (finished_at);
