-- Issue 12: flow control. ready gains three values: 3 gated (due, but it runs only
-- through the gates: its queue has limits, it has a concurrency key or takes more than
-- one slot), 4 held by its queue's limit, 5 held by its key's limit. Held jobs leave the
-- claim's range, so a saturated queue or key never slows the claims of other jobs; a
-- place freeing in the lane puts the first of them back to gated.
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE jobs ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE jobs ADD COLUMN slots INTEGER NOT NULL DEFAULT 1;
CREATE INDEX jobs_gated ON jobs (priority DESC, run_at, seq) WHERE ready = 3;
CREATE INDEX jobs_held_queue ON jobs (queue, priority DESC, run_at, seq) WHERE ready = 4;
CREATE INDEX jobs_held_key ON jobs (concurrency_key, priority DESC, run_at, seq) WHERE ready = 5;
-- The limits of a queue (`queue set`); reopen_at: when a rate-limited queue with held
-- jobs has room in its window again.
CREATE TABLE queue_limits (
    queue       TEXT PRIMARY KEY,
    concurrency INTEGER,
    rate_limit  INTEGER,
    rate_period REAL,
    reopen_at   REAL
) WITHOUT ROWID;
-- The starts of rate-limited queues' jobs within their windows (older ones are pruned).
CREATE TABLE queue_starts (
    queue      TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE INDEX queue_starts_queue ON queue_starts (queue, started_at);
-- Dependents unblocked by a completion are gated where the gates apply.
DROP TRIGGER jobs_unblock;
CREATE TRIGGER jobs_unblock AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'completed' AND NEW.has_dependents = 1
BEGIN
    UPDATE jobs SET blockers = blockers - 1,
        ready = CASE WHEN blockers = 1 AND state IN ('pending', 'failed')
            AND run_at <= (julianday('now') - 2440587.5) * 86400.0
            THEN (CASE WHEN queue IN (SELECT queue FROM paused_queues) THEN 2
                WHEN concurrency_key IS NOT NULL OR slots > 1
                    OR queue IN (SELECT queue FROM queue_limits) THEN 3
                ELSE 1 END)
            ELSE ready END
        WHERE seq IN (SELECT job_seq FROM job_deps WHERE dep_seq = NEW.seq);
    DELETE FROM job_deps WHERE dep_seq = NEW.seq;
END;
