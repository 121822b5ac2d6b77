-- jobs: one row per job; seq is the insertion order (and SQLite's rowid)
CREATE TABLE jobs (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    command     TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,
    queue       TEXT    NOT NULL DEFAULT 'default',
    run_at      REAL    NOT NULL,
    timeout     REAL,
    cwd         TEXT,
    env         TEXT,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL,
    started_at  REAL,
    finished_at REAL,
    exit_code   INTEGER,
    last_error  TEXT,
    worker_id   TEXT,
    lease_until REAL,
    -- 1 while the job is waiting and due: claims read only these rows, so neither
    -- finished jobs nor jobs scheduled far ahead slow a claim down
    ready       INTEGER NOT NULL DEFAULT 0
);
-- claim: the due jobs in claim order
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq) WHERE ready = 1;
-- promotion of scheduled jobs (and the next wake-up time of an idle pool)
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE ready = 0 AND state IN ('pending', 'failed');
-- reap and heartbeat: only running jobs
CREATE INDEX jobs_running ON jobs (worker_id, lease_until) WHERE state = 'processing';
-- status counts and `list --state` (the rowid is implied, so this also orders by seq)
CREATE INDEX jobs_state ON jobs (state);
-- output of the latest run, apart from jobs so scans over jobs stay small
CREATE TABLE job_output (
    job_seq INTEGER PRIMARY KEY REFERENCES jobs (seq) ON DELETE CASCADE,
    output  BLOB NOT NULL
);
CREATE TABLE config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    slots          INTEGER NOT NULL,
    queues         TEXT,
    started_at     REAL    NOT NULL,
    heartbeat_at   REAL    NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
