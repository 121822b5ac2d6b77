-- Issue 14: hooks on outcomes. A hook names the events it fires on (as ',completed,dead,':
-- a LIKE finds one), a command or a URL, and optionally one queue; what its deliveries
-- did so far is kept on it for `hook list` and the dashboard.
CREATE TABLE hooks (
    name        text PRIMARY KEY,
    events      text    NOT NULL,
    command     text,
    url         text,
    queue       text,
    created_at  double precision NOT NULL,
    last_at     double precision,  -- the latest delivery finished (or given up)
    last_ok     integer,           -- 1 delivered, 0 failed (NULL: none yet)
    last_error  text,
    failures    integer NOT NULL DEFAULT 0, -- deliveries that failed (each attempt)
    given_up    integer NOT NULL DEFAULT 0  -- events given up on after hook-retries
);
-- The outbox: one row per hook and matching event, written by the trigger below in the
-- transaction that records the outcome, so an outcome is never without its events. A
-- pool delivers it under a lease (lease_holder until lease_until), retrying with backoff
-- (attempts, next_try). Delivered rows are deleted; done = 1: given up.
CREATE TABLE hook_events (
    id           bigserial PRIMARY KEY,
    hook         text    NOT NULL,
    job_id       text    NOT NULL,
    event        text    NOT NULL,
    exit_code    integer,
    created_at   double precision NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    next_try     double precision NOT NULL,
    last_error   text,
    done         integer NOT NULL DEFAULT 0,
    lease_holder text,
    lease_until  double precision
);
CREATE INDEX hook_events_due ON hook_events (next_try) WHERE done = 0;
-- Every path that changes a job's state (a pool's finish, cancel, the reaper, the DLQ
-- commands) fires it; without hooks the function finds none and inserts nothing.
CREATE FUNCTION queuectl_hooks() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO hook_events (hook, job_id, event, exit_code, created_at, next_try)
    SELECT name, NEW.id, NEW.state, NEW.exit_code, extract(epoch from now())::double precision,
        extract(epoch from now())::double precision
    FROM hooks WHERE events LIKE '%,' || NEW.state || ',%'
        AND (queue IS NULL OR queue = NEW.queue);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_hooks AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.state IN ('completed', 'failed', 'dead', 'canceled')
        AND NEW.state IS DISTINCT FROM OLD.state)
    EXECUTE FUNCTION queuectl_hooks();
