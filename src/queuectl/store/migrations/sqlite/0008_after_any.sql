-- Issue 14: run-after-any and exit codes that end retries.
-- Every after-any dependency the job was enqueued with (JSON list of ids), for show and
-- export; the exit codes that make it dead at once (JSON list; NULL: the config's).
ALTER TABLE jobs ADD COLUMN after_any TEXT;
ALTER TABLE jobs ADD COLUMN no_retry_on TEXT;
-- A dependency row is met by its job's completion (0, `--after`) or by its end,
-- whatever it was: completed, dead or canceled (1, `--after-any`).
ALTER TABLE job_deps ADD COLUMN any_outcome INTEGER NOT NULL DEFAULT 0;
-- The trigger of 0007 also fires when a job ends dead or canceled, and then meets only
-- its after-any rows: the --after rows of a dead or canceled job stay (their jobs wait
-- until it is run again and completes). What it makes of the unblocked is as in 0007.
DROP TRIGGER jobs_unblock;
CREATE TRIGGER jobs_unblock AFTER UPDATE OF state ON jobs
WHEN NEW.state IN ('completed', 'dead', 'canceled') AND NEW.has_dependents = 1
BEGIN
    UPDATE jobs SET blockers = blockers - 1,
        ready = CASE WHEN blockers = 1 AND state IN ('pending', 'failed')
            AND run_at <= (julianday('now') - 2440587.5) * 86400.0
            THEN (CASE WHEN queue IN (SELECT queue FROM paused_queues) THEN 2
                WHEN concurrency_key IS NOT NULL OR slots > 1
                    OR queue IN (SELECT queue FROM queue_limits) THEN 3
                ELSE 1 END)
            ELSE ready END
        WHERE seq IN (SELECT job_seq FROM job_deps WHERE dep_seq = NEW.seq
            AND (NEW.state = 'completed' OR any_outcome = 1));
    DELETE FROM job_deps WHERE dep_seq = NEW.seq
        AND (NEW.state = 'completed' OR any_outcome = 1);
END;
