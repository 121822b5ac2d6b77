-- Issue 14 item 2: each run's output tail, kept with the run (only runs that printed).
-- `streams` maps the merged tail's bytes to their stream: "o12e5o3" is 12 bytes of
-- stdout, 5 of stderr, 3 of stdout; stdout or stderr alone is derived from it.
CREATE TABLE job_run_output (
    run_id  INTEGER PRIMARY KEY REFERENCES job_runs (id) ON DELETE CASCADE,
    output  BLOB NOT NULL,
    streams TEXT NOT NULL
);
