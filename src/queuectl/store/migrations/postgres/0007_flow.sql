-- Issue 12: flow control. ready gains three values: 3 gated (due, but it runs only
-- through the gates: its queue has limits, it has a concurrency key or takes more than
-- one slot), 4 held by its queue's limit, 5 held by its key's limit. Held jobs leave the
-- claim's range, so a saturated queue or key never slows the claims of other jobs; a
-- place freeing in the lane puts the first of them back to gated.
ALTER TABLE jobs
    ADD COLUMN concurrency_key text,
    ADD COLUMN concurrency_limit integer,
    ADD COLUMN slots integer NOT NULL DEFAULT 1;
CREATE INDEX jobs_gated ON jobs (priority DESC, run_at, seq) WHERE ready = 3;
CREATE INDEX jobs_held_queue ON jobs (queue, priority DESC, run_at, seq) WHERE ready = 4;
CREATE INDEX jobs_held_key ON jobs (concurrency_key, priority DESC, run_at, seq) WHERE ready = 5;
-- The limits of a queue (`queue set`); reopen_at: when a rate-limited queue with held
-- jobs has room in its window again.
CREATE TABLE queue_limits (
    queue       text PRIMARY KEY,
    concurrency integer,
    rate_limit  integer,
    rate_period double precision,
    reopen_at   double precision
);
-- The starts of rate-limited queues' jobs within their windows (older ones are pruned).
CREATE TABLE queue_starts (
    queue      text NOT NULL,
    started_at double precision NOT NULL
);
CREATE INDEX queue_starts_queue ON queue_starts (queue, started_at);
-- Dependents unblocked by a completion are gated where the gates apply.
CREATE OR REPLACE FUNCTION queuectl_unblock() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    WITH met AS (DELETE FROM job_deps WHERE dep_seq = NEW.seq RETURNING job_seq)
    UPDATE jobs SET blockers = blockers - 1,
        ready = CASE WHEN blockers = 1 AND state IN ('pending', 'failed')
            AND run_at <= extract(epoch from now())::double precision
            THEN (CASE WHEN queue IN (SELECT queue FROM paused_queues) THEN 2
                WHEN concurrency_key IS NOT NULL OR slots > 1
                    OR queue IN (SELECT queue FROM queue_limits) THEN 3
                ELSE 1 END)
            ELSE ready END
        FROM met WHERE jobs.seq = met.job_seq;
    RETURN NULL;
END
$$;
