-- Issue 4: dependencies, cancel, paused queues, unique keys, schedules, retention.
-- ready now has three values: 0 not claimable, 1 claimable, 2 due but its queue is paused
-- (paused jobs leave the claim index, so a paused queue never slows claims).
-- Dependencies not yet completed; a job with blockers > 0 is never promoted.
ALTER TABLE jobs ADD COLUMN blockers INTEGER NOT NULL DEFAULT 0;
-- Set once another job depends on this one: only then does completing it look for dependents.
ALTER TABLE jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;
-- Every dependency the job was enqueued with (JSON list of ids), for show and export.
ALTER TABLE jobs ADD COLUMN depends_on TEXT;
-- `cancel` of a running job: the pool that holds it kills it within a heartbeat.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
DROP INDEX jobs_scheduled;
CREATE INDEX jobs_scheduled ON jobs (run_at)
    WHERE ready = 0 AND state IN ('pending', 'failed') AND blockers = 0;
CREATE INDEX jobs_paused ON jobs (queue) WHERE ready = 2;
-- purge and retention: finished jobs by state and age
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE finished_at IS NOT NULL;
-- one unfinished job per unique key
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'processing', 'failed');
-- the dependencies each job still waits for (a row goes when its dependency completes)
CREATE TABLE job_deps (
    job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    dep_seq INTEGER NOT NULL REFERENCES jobs (seq),
    PRIMARY KEY (job_seq, dep_seq)
) WITHOUT ROWID;
CREATE INDEX job_deps_dep ON job_deps (dep_seq);
-- Completing a job unblocks its dependents, in the same transaction whatever path
-- completed it: those left waiting for nothing and due become claimable at once.
CREATE TRIGGER jobs_unblock AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'completed' AND NEW.has_dependents = 1
BEGIN
    UPDATE jobs SET blockers = blockers - 1,
        ready = CASE WHEN blockers = 1 AND state IN ('pending', 'failed')
            AND run_at <= (julianday('now') - 2440587.5) * 86400.0
            THEN (CASE WHEN queue IN (SELECT queue FROM paused_queues) THEN 2 ELSE 1 END)
            ELSE ready END
        WHERE seq IN (SELECT job_seq FROM job_deps WHERE dep_seq = NEW.seq);
    DELETE FROM job_deps WHERE dep_seq = NEW.seq;
END;
CREATE TABLE paused_queues (
    queue     TEXT PRIMARY KEY,
    paused_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE schedules (
    name       TEXT PRIMARY KEY,
    cron       TEXT    NOT NULL,
    tz         TEXT    NOT NULL,
    spec       TEXT    NOT NULL,  -- JSON job spec each run is made from
    next_at    REAL    NOT NULL,  -- the next tick, epoch seconds
    paused     INTEGER NOT NULL DEFAULT 0,
    created_at REAL    NOT NULL,
    last_at    REAL,              -- the tick of the latest run enqueued
    last_job   TEXT
) WITHOUT ROWID;
