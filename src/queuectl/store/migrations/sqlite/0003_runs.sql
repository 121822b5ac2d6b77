-- Issue 5: the history of runs, for `show`, `stats` and metrics.
-- Seconds from when the job was due to when its latest run started (set by the claim).
ALTER TABLE jobs ADD COLUMN waited REAL;
-- One row per finished run: recorded with the outcome (or when the lease expired: 'lost').
CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    job_seq     INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    queue       TEXT    NOT NULL,
    worker_id   TEXT,
    started_at  REAL    NOT NULL,
    finished_at REAL    NOT NULL,
    waited      REAL,
    outcome     TEXT    NOT NULL,  -- completed, failed, dead, canceled or lost
    exit_code   INTEGER,
    error       TEXT
);
CREATE INDEX job_runs_job ON job_runs (job_seq);
CREATE INDEX job_runs_finished ON job_runs (finished_at);
