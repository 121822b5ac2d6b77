-- Issue 4: dependencies, cancel, paused queues, unique keys, schedules, retention.
-- ready now has three values: 0 not claimable, 1 claimable, 2 due but its queue is paused
-- (paused jobs leave the claim index, so a paused queue never slows claims).
DROP INDEX jobs_ready;
DROP INDEX jobs_scheduled;
ALTER TABLE jobs
    ALTER COLUMN ready DROP DEFAULT,
    ALTER COLUMN ready TYPE smallint USING ready::int,
    ALTER COLUMN ready SET DEFAULT 0,
    -- dependencies not yet completed; a job with blockers > 0 is never promoted
    ADD COLUMN blockers integer NOT NULL DEFAULT 0,
    -- set once another job depends on this one: only then does completing it look for dependents
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false,
    -- every dependency the job was enqueued with (JSON list of ids), for show and export
    ADD COLUMN depends_on text,
    -- `cancel` of a running job: the pool that holds it kills it within a heartbeat
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false,
    ADD COLUMN unique_key text;
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq) WHERE ready = 1;
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
    job_seq bigint NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    dep_seq bigint NOT NULL REFERENCES jobs (seq),
    PRIMARY KEY (job_seq, dep_seq)
);
CREATE INDEX job_deps_dep ON job_deps (dep_seq);
-- Completing a job unblocks its dependents, in the same transaction whatever path
-- completed it: those left waiting for nothing and due become claimable at once. In READ COMMITTED
-- each statement of the function sees rows committed before it ran, so a dependent
-- added while this job was finishing (add locks the row it depends on) is not missed.
CREATE FUNCTION queuectl_unblock() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    WITH met AS (DELETE FROM job_deps WHERE dep_seq = NEW.seq RETURNING job_seq)
    UPDATE jobs SET blockers = blockers - 1,
        ready = CASE WHEN blockers = 1 AND state IN ('pending', 'failed')
            AND run_at <= extract(epoch from now())::double precision
            THEN (CASE WHEN queue IN (SELECT queue FROM paused_queues) THEN 2 ELSE 1 END)
            ELSE ready END
        FROM met WHERE jobs.seq = met.job_seq;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_unblock AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.state = 'completed' AND NEW.has_dependents)
    EXECUTE FUNCTION queuectl_unblock();
CREATE TABLE paused_queues (
    queue     text PRIMARY KEY,
    paused_at double precision NOT NULL
);
CREATE TABLE schedules (
    name       text PRIMARY KEY,
    cron       text             NOT NULL,
    tz         text             NOT NULL,
    spec       text             NOT NULL,  -- JSON job spec each run is made from
    next_at    double precision NOT NULL,  -- the next tick, epoch seconds
    paused     boolean          NOT NULL DEFAULT false,
    created_at double precision NOT NULL,
    last_at    double precision,           -- the tick of the latest run enqueued
    last_job   text
);
