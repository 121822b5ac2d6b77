-- Issue 14: run-after-any and exit codes that end retries.
-- Every after-any dependency the job was enqueued with (JSON list of ids), for show and
-- export; the exit codes that make it dead at once (JSON list; NULL: the config's).
ALTER TABLE jobs
    ADD COLUMN after_any text,
    ADD COLUMN no_retry_on text;
-- A dependency row is met by its job's completion (false, `--after`) or by its end,
-- whatever it was: completed, dead or canceled (true, `--after-any`).
ALTER TABLE job_deps ADD COLUMN any_outcome boolean NOT NULL DEFAULT false;
-- The trigger of 0007 also fires when a job ends dead or canceled, and then meets only
-- its after-any rows: the --after rows of a dead or canceled job stay (their jobs wait
-- until it is run again and completes). What it makes of the unblocked is as in 0007.
CREATE OR REPLACE FUNCTION queuectl_unblock() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    WITH met AS (DELETE FROM job_deps WHERE dep_seq = NEW.seq
            AND (NEW.state = 'completed' OR any_outcome) RETURNING job_seq)
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
DROP TRIGGER jobs_unblock ON jobs;
CREATE TRIGGER jobs_unblock AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.state IN ('completed', 'dead', 'canceled') AND NEW.has_dependents)
    EXECUTE FUNCTION queuectl_unblock();
